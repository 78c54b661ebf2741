// Turnstile live seat map: the page a node serves at `/`. Plain JavaScript, no build step, no
// dependencies; every request goes to the node that served it.
//
// `/?event=ID` draws the event's venue from GET /v1/events/ID (layout and seat statuses), then
// follows GET /v1/events/ID/watch (Server-Sent Events, proto3 JSON of WatchEventResponse):
// a KIND_SNAPSHOT replaces every seat's status (a seat it does not list is available) and every
// section's counts; a KIND_CHANGE updates only the seats and sections it lists. Without `event`
// the page lists events from GET /v1/events/search.
//
// Text from the server only ever reaches the page through textContent (never innerHTML).
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const STATUS = { SEAT_STATUS_AVAILABLE: 'available', SEAT_STATUS_HELD: 'held', SEAT_STATUS_BOOKED: 'booked' };
  const TOKEN_KEY = 'turnstile.token';
  const eventId = new URLSearchParams(location.search).get('event');
  const enc = encodeURIComponent;

  const state = {
    seats: new Map(), // seat id -> element
    sections: new Map(), // section id -> { counts, bar } elements
    availability: new Map(), // section id -> Availability, in the server's order
    version: 0n,
    synced: false, // the watch stream delivered a snapshot: the map is live
    cancelled: false,
    selected: new Set(),
    holds: new Map(), // hold id -> { hold, expires element }
    source: null,
    retryMs: 1000,
  };

  // ---- small helpers --------------------------------------------------------------------------

  // Builds an element; children are nodes or strings (strings become text nodes).
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === 'class') node.className = value;
      else node.setAttribute(key, value);
    }
    node.append(...children.filter((child) => child !== null && child !== undefined));
    return node;
  }

  function say(text, kind = '') {
    $('status').textContent = text;
    $('status').dataset.kind = kind;
  }

  function randomId() {
    // crypto.getRandomValues works on plain http too (randomUUID needs a secure context).
    return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
  }

  function big(value) {
    try { return BigInt(value || 0); } catch { return 0n; }
  }

  function when(timestamp) {
    const date = new Date(timestamp || 0);
    if (!timestamp || isNaN(date) || date.getTime() === 0) return '';
    return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  }

  function money(price) {
    if (!price || !price.currency) return '';
    try {
      const format = new Intl.NumberFormat(undefined, { style: 'currency', currency: price.currency });
      return format.format(Number(price.amountMinor) / 10 ** format.resolvedOptions().maximumFractionDigits);
    } catch {
      return `${price.amountMinor} ${price.currency} minor units`;
    }
  }

  class ApiError extends Error {
    constructor(status, code, message, field) {
      super(message);
      Object.assign(this, { status, code, field });
    }
  }

  function describe(error) {
    if (!(error instanceof ApiError)) return String((error && error.message) || error);
    return `${error.code}: ${error.message}${error.field ? ` (field: ${error.field})` : ''}`;
  }

  // One JSON call; an HTTP error becomes an ApiError from the body {code, message, field}.
  async function api(method, path, body, authorized) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (authorized) headers.Authorization = `Bearer ${token()}`;
    let response;
    try {
      response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (error) {
      throw new ApiError(0, 'UNAVAILABLE', `the node did not answer (${error.message})`);
    }
    const text = await response.text();
    let json = null;
    try { json = text ? JSON.parse(text) : {}; } catch { /* not JSON: reported below */ }
    if (!response.ok) {
      const message = (json && json.message) || text.trim().slice(0, 200) || response.statusText;
      throw new ApiError(response.status, (json && json.code) || `HTTP ${response.status}`, message, json && json.field);
    }
    if (json === null) throw new ApiError(response.status, 'INTERNAL', `${method} ${path} answered with non-JSON`);
    return json;
  }

  // ---- token ----------------------------------------------------------------------------------

  function token() {
    return $('token').value.trim();
  }

  // With storage off (private modes may refuse it) the token lives as long as the page.
  function setToken(value) {
    $('token').value = value;
    try { localStorage.setItem(TOKEN_KEY, value); } catch { /* see above */ }
    selectionChanged();
  }

  try { $('token').value = localStorage.getItem(TOKEN_KEY) || ''; } catch { /* see above */ }
  $('token-form').addEventListener('submit', (event) => event.preventDefault());
  $('token').addEventListener('input', () => setToken($('token').value.trim()));

  $('dev-token').addEventListener('click', async () => {
    const user = $('dev-user').value.trim() || `demo-${randomId().slice(0, 6)}`;
    $('dev-user').value = user;
    try {
      const answer = await api('POST', '/v1/dev/token', { user });
      setToken(answer.token || '');
      say(`Development token for "${user}" in use.`, 'ok');
    } catch (error) {
      if (error.status === 404) {
        $('dev-token').disabled = true;
        $('dev-token').title = 'This node runs without a development secret.';
        say('This node issues no development tokens: paste a buyer token.', 'error');
      } else {
        say(describe(error), 'error');
      }
    }
  });

  // ---- event list -----------------------------------------------------------------------------

  async function listEvents(query) {
    const params = new URLSearchParams({ limit: '20' });
    if (query) params.set('query', query);
    const list = $('event-list');
    try {
      const { events = [] } = await api('GET', `/v1/events/search?${params}`);
      list.replaceChildren();
      for (const event of events) {
        const details = [[event.venueName, event.city].filter(Boolean).join(', '), when(event.startsAt)];
        details.push(`${event.available} available`);
        list.append(
          h('li', null,
            h('a', { href: `/?event=${enc(event.eventId)}` }, event.name || event.eventId),
            h('div', { class: 'muted' }, details.filter(Boolean).join(' · '))));
      }
      if (!events.length) list.append(h('li', { class: 'muted' }, 'No events found.'));
      say('');
    } catch (error) {
      say(describe(error), 'error');
    }
  }

  // ---- the seat map ---------------------------------------------------------------------------

  function renderEvent({ event = {}, venue = {} }) {
    document.title = `${event.name || eventId} · Turnstile`;
    $('event-name').textContent = event.name || eventId;
    $('event-where').textContent = [venue.name, venue.city, venue.address].filter(Boolean).join(' · ');
    const starts = when(event.startsAt);
    $('event-when').textContent = starts ? `Starts ${starts}` : '';
    setEventStatus(event.status);
    const map = $('map');
    map.replaceChildren();
    state.seats.clear();
    state.sections.clear();
    for (const section of venue.sections || []) {
      const id = section.sectionId;
      const title = section.name && section.name !== id ? `${section.name} (${id})` : id;
      const entry = { counts: h('div', { class: 'section-counts' }), bar: null };
      const box = h('section', { class: 'section', 'data-section-id': id }, h('h3', null, title), entry.counts);
      const rows = section.rows || [];
      if (!rows.length && Number(section.generalAdmissionCapacity) > 0) {
        entry.bar = h('div', { class: 'ga-bar' }, h('span', { class: 'booked' }), h('span', { class: 'held' }));
        box.append(h('div', { class: 'ga' }, h('span', null, `General admission · ${section.generalAdmissionCapacity} places`), entry.bar));
      }
      for (const row of rows) {
        const line = h('div', { class: 'row' }, h('span', { class: 'row-label' }, row.label));
        for (const label of row.seatLabels || []) {
          const seatId = `${id}:${row.label}:${label}`;
          const title = `Section ${id}, row ${row.label}, seat ${label}`;
          const seat = h('button', { type: 'button', class: 'seat', title, 'data-seat-id': seatId, 'data-status': 'available' });
          state.seats.set(seatId, seat);
          line.append(seat);
        }
        box.append(line);
      }
      state.sections.set(id, entry);
      map.append(box);
    }
    if (!map.children.length) map.append(h('p', { class: 'muted' }, 'The venue has no layout to draw.'));
    $('event').hidden = false;
  }

  // A snapshot sets every seat: those it lists to their status, every other one to available
  // (a snapshot may list only the reserved seats that are taken). A change sets only its seats.
  function applySeats(list, snapshot) {
    const next = new Map();
    for (const { seatId, status } of list || []) if (STATUS[status]) next.set(seatId, STATUS[status]);
    if (snapshot) {
      for (const [seatId, seat] of state.seats) setSeat(seat, next.get(seatId) || 'available');
    } else {
      for (const [seatId, status] of next) {
        const seat = state.seats.get(seatId);
        if (seat) setSeat(seat, status);
      }
    }
  }

  function setSeat(seat, status) {
    if (seat.dataset.status === status) return;
    seat.dataset.status = status;
    if (status !== 'available' && state.selected.delete(seat.dataset.seatId)) {
      seat.classList.remove('selected');
      selectionChanged();
    }
  }

  function applyAvailability(rows, snapshot) {
    if (snapshot) state.availability.clear();
    for (const row of rows || []) state.availability.set(row.sectionId, row);
    renderAvailability();
  }

  function renderAvailability() {
    const body = $('availability');
    body.replaceChildren();
    const sum = { total: 0, available: 0, held: 0, booked: 0 };
    for (const row of state.availability.values()) {
      const count = (key) => Number(row[key]) || 0;
      for (const key of Object.keys(sum)) sum[key] += count(key);
      body.append(
        h('tr', null,
          h('td', null, row.sectionId + (row.generalAdmission ? ' (GA)' : '')),
          h('td', null, money(row.price)),
          ...['available', 'held', 'booked', 'total'].map((key) => h('td', null, String(count(key))))));
      const entry = state.sections.get(row.sectionId);
      if (!entry) continue;
      entry.counts.textContent =
        `${count('available')} of ${count('total')} available · ${count('held')} held · ${count('booked')} booked` +
        (row.price && row.price.currency ? ` · ${money(row.price)}` : '');
      if (entry.bar && count('total')) {
        entry.bar.querySelector('.booked').style.width = `${(100 * count('booked')) / count('total')}%`;
        entry.bar.querySelector('.held').style.width = `${(100 * count('held')) / count('total')}%`;
      }
    }
    $('availability-total').replaceChildren(
      h('td', null, 'Total'),
      h('td'),
      ...['available', 'held', 'booked', 'total'].map((key) => h('td', null, String(sum[key]))));
  }

  function setEventStatus(status) {
    state.cancelled = status === 'EVENT_STATUS_CANCELLED';
    $('event-cancelled').hidden = !state.cancelled;
    if (state.cancelled) clearSelection();
    selectionChanged();
  }

  function setVersion(version) {
    state.version = big(version);
    $('version').textContent = `version ${state.version}`;
  }

  // ---- live updates ---------------------------------------------------------------------------

  function setLive(mode) {
    document.body.dataset.live = mode === 'live' ? 'true' : 'false';
    $('live').hidden = false;
    $('live').dataset.state = mode;
    $('live').textContent = mode;
  }

  // The browser resumes a dropped stream by itself, sending Last-Event-ID (the last version seen):
  // the node answers with the changes missed, or a snapshot. A stream the browser gave up on (an
  // HTTP error) is opened again, from a snapshot, after a growing pause.
  function watch() {
    if (state.source) state.source.close();
    state.synced = false;
    setLive('connecting');
    const source = new EventSource(`/v1/events/${enc(eventId)}/watch`);
    state.source = source;
    source.onopen = () => {
      state.retryMs = 1000;
      setLive(state.synced ? 'live' : 'connecting');
    };
    source.onmessage = (message) => {
      let update;
      try { update = JSON.parse(message.data); } catch { return say('The live feed sent a non-JSON message.', 'error'); }
      onUpdate(update);
    };
    source.onerror = (event) => {
      if (state.source !== source) return;
      if (event.data) {
        // A named "error" event from the node: {code, message}.
        let error = {};
        try { error = JSON.parse(event.data) || {}; } catch { /* shown as it came */ }
        say(`Live feed: ${error.code || 'error'}: ${error.message || event.data}`, 'error');
      }
      setLive('reconnecting');
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(() => state.source === source && watch(), state.retryMs);
        state.retryMs = Math.min(state.retryMs * 2, 30000);
      }
    };
  }

  function onUpdate(update) {
    const version = big(update.version);
    if (update.kind === 'KIND_SNAPSHOT') {
      applySeats(update.seats, true);
      applyAvailability(update.availability, true);
      state.synced = true;
    } else if (update.kind === 'KIND_CHANGE') {
      if (!state.synced) return; // cannot happen: a fresh stream starts with a snapshot
      if (version <= state.version) return; // already applied
      // Changes come one version at a time; a gap means a missed one: start again from a snapshot.
      if (version > state.version + 1n) return watch();
      applySeats(update.seats, false);
      applyAvailability(update.availability, false);
    } else {
      return;
    }
    setVersion(version);
    setEventStatus(update.status);
    setLive('live');
  }

  // ---- selecting and holding ------------------------------------------------------------------

  function selectionChanged() {
    const count = state.selected.size;
    const canSelect = Boolean(token()) && !state.cancelled;
    $('selection').textContent = count
      ? `${count} seat${count === 1 ? '' : 's'}: ${[...state.selected].join(', ')}`
      : canSelect
        ? 'Click available seats to select them.'
        : state.cancelled
          ? 'The event is cancelled.'
          : 'Paste a buyer token, then click available seats.';
    $('hold').disabled = !count || !canSelect;
    $('clear').disabled = !count;
    $('map').classList.toggle('can-select', canSelect);
  }

  function clearSelection() {
    for (const seatId of state.selected) state.seats.get(seatId)?.classList.remove('selected');
    state.selected.clear();
    selectionChanged();
  }

  $('map').addEventListener('click', (event) => {
    const seat = event.target.closest('[data-seat-id]');
    if (!seat) return;
    const seatId = seat.dataset.seatId;
    if (!token()) {
      say('Paste a buyer token (or take a development token) to select seats.', 'error');
    } else if (state.cancelled) {
      say('The event is cancelled.', 'error');
    } else if (state.selected.delete(seatId)) {
      seat.classList.remove('selected');
    } else if (seat.dataset.status === 'available') {
      state.selected.add(seatId);
      seat.classList.add('selected');
    } else {
      say(`Seat ${seatId} is ${seat.dataset.status}.`);
    }
    selectionChanged();
  });

  $('clear').addEventListener('click', clearSelection);

  $('hold').addEventListener('click', async () => {
    const seatIds = [...state.selected];
    $('hold').disabled = true;
    try {
      const body = { seats: { seatIds }, idempotencyKey: randomId() };
      const { hold } = await api('POST', `/v1/events/${enc(eventId)}/holds`, body, true);
      clearSelection();
      state.holds.set(hold.holdId, { hold });
      renderHolds();
      say(`Held ${seatIds.length} seat${seatIds.length === 1 ? '' : 's'}: hold ${hold.holdId}.`, 'ok');
    } catch (error) {
      say(describe(error), 'error');
    } finally {
      selectionChanged();
    }
  });

  async function confirmHold(entry) {
    // Kept per hold, so that pressing again after a lost answer books once.
    entry.payment ||= { paymentReference: `demo-${randomId()}`, idempotencyKey: randomId() };
    try {
      const { booking } = await api('POST', `/v1/holds/${enc(entry.hold.holdId)}/confirm`, entry.payment, true);
      entry.hold = { ...entry.hold, status: 'HOLD_STATUS_CONFIRMED', bookingId: booking.bookingId };
      say(`Booked: booking ${booking.bookingId} (payment ${booking.paymentReference}).`, 'ok');
    } catch (error) {
      say(describe(error), 'error');
    }
    renderHolds();
  }

  async function releaseHold(entry) {
    try {
      const { hold } = await api('DELETE', `/v1/holds/${enc(entry.hold.holdId)}`, undefined, true);
      entry.hold = hold || { ...entry.hold, status: 'HOLD_STATUS_RELEASED' };
      say(`Released hold ${entry.hold.holdId}.`, 'ok');
    } catch (error) {
      say(describe(error), 'error');
    }
    renderHolds();
  }

  function renderHolds() {
    const list = $('holds');
    list.replaceChildren();
    for (const entry of [...state.holds.values()].reverse()) {
      const { hold } = entry;
      const status = String(hold.status || '').replace('HOLD_STATUS_', '').toLowerCase();
      const places = (hold.tickets || []).map((ticket) => ticket.seatId || `${ticket.sectionId} (GA)`);
      entry.expires = h('span', { class: 'muted' });
      const actions = h('div', { class: 'actions' });
      const action = (label, run) => {
        const button = h('button', { type: 'button' }, label);
        button.addEventListener('click', () => { button.disabled = true; run(entry); });
        actions.append(button);
      };
      // An expired hold may still be confirmed while its seats are free.
      if (status === 'active' || status === 'expired') action('Confirm', confirmHold);
      if (status === 'active') action('Release', releaseHold);
      list.append(
        h('li', { 'data-hold-id': hold.holdId },
          h('div', { class: 'hold-id' }, hold.holdId),
          h('div', null, [status, hold.bookingId && `booking ${hold.bookingId}`, money(hold.total)].filter(Boolean).join(' · ')),
          h('div', null, places.join(', ')),
          entry.expires,
          actions));
    }
    if (!list.children.length) list.append(h('li', { class: 'muted' }, 'None placed from this page.'));
    tick();
  }

  function tick() {
    for (const { hold, expires } of state.holds.values()) {
      if (!expires) continue;
      const left = Math.round((new Date(hold.expiresAt).getTime() - Date.now()) / 1000);
      const active = hold.status === 'HOLD_STATUS_ACTIVE';
      expires.textContent = !active || isNaN(left) ? '' : left > 0 ? `expires in ${left} s` : 'expiry passed';
    }
  }
  setInterval(tick, 1000);

  // ---- start ----------------------------------------------------------------------------------

  async function start() {
    selectionChanged();
    if (!eventId) {
      $('events').hidden = false;
      $('search').addEventListener('submit', (event) => {
        event.preventDefault();
        listEvents($('query').value.trim());
      });
      listEvents('');
      return;
    }
    say('Loading the event…');
    let data;
    try {
      data = await api('GET', `/v1/events/${enc(eventId)}?include_layout=true&include_seats=true`);
    } catch (error) {
      say(describe(error), 'error');
      return;
    }
    renderEvent(data);
    applySeats(data.seats, true);
    applyAvailability(data.availability, true);
    setVersion(data.version);
    say('');
    watch();
  }

  start();
})();

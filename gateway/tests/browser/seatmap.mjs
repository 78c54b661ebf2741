// Browser check of the node's live seat map, in Debian's chromium, in two phases on one page load:
//
// 1. Holds SEAT_ID through the HTTP API (from here, not from the page) and waits for the page to
//    show the seat held, with no reload: the change must arrive over the page's Server-Sent Events
//    stream.
// 2. Uses the page like a buyer: types TOKEN into its token field, clicks another available seat
//    (SEAT2_ID, or else the first seat the page shows available other than SEAT_ID), presses Hold,
//    waits for the seat to show held and the hold in the Holds panel, presses that hold's Confirm
//    and waits for the seat to show booked. The screenshot is taken last: one seat held, one booked.
//
//   TURNSTILE_URL=http://127.0.0.1:PORT EVENT_ID=... TOKEN=... SEAT_ID=101:A:1 [SEAT2_ID=101:A:2] \
//   SCREENSHOT=/tmp/seatmap.png [CHROMIUM=/usr/bin/chromium] node gateway/tests/browser/seatmap.mjs
//
// Progress goes to stderr; the hold ids, the booking id and, last, one JSON line to stdout:
//   {"ok":true,"holdId":"...","before":"rgb(...)","after":"rgb(...)",
//    "clickedSeat":"...","pageHoldId":"...","bookingId":"...","booked":true}
// (holdId/before/after from phase 1; clickedSeat, pageHoldId, bookingId and booked from phase 2.)
// Exit 0 on success; 1 with the reason on stderr (and a screenshot when one can be taken).

import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import { chromium } from 'playwright-core';

const LAUNCH_MS = 30_000;
const PAGE_READY_MS = 20_000;
const HOLD_REQUEST_MS = 10_000;
const SEAT_HELD_MS = 15_000;
const PAGE_ACTION_MS = 10_000; // typing the token, selecting a seat, pressing a button
const PAGE_HOLD_MS = 15_000; // Hold pressed -> seat held on the map and the hold in the Holds panel
const PAGE_BOOK_MS = 15_000; // Confirm pressed -> seat booked on the map
const SCREENSHOT_MS = 15_000;
const CLOSE_MS = 10_000;
const WATCHDOG_MS = 120_000;

const env = process.env;
const log = (message) => process.stderr.write(`seatmap: ${message}\n`);

function required(name) {
  const value = (env[name] || '').trim();
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

// Settles within `ms` or rejects naming `what`.
function bounded(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// What the page shows of the seat (and of its live stream), read in the page.
function seatState(seatId) {
  const seat = document.querySelector(`[data-seat-id="${CSS.escape(seatId)}"]`);
  return {
    found: Boolean(seat),
    status: seat ? seat.dataset.status : null,
    color: seat ? getComputedStyle(seat).backgroundColor : null,
    live: document.body.dataset.live || null,
    version: (document.getElementById('version') || {}).textContent || null,
    statusLine: (document.getElementById('status') || {}).textContent || null,
    marker: window.__seatmapMarker || null,
  };
}

// What the page shows of its own side of buying: the selection, the Hold button, the Holds panel
// and the status line (read in the page, for progress and failure reports).
function buyerState(seatId) {
  const seat = document.querySelector(`[data-seat-id="${CSS.escape(seatId)}"]`);
  const status = document.getElementById('status');
  const hold = document.getElementById('hold');
  return {
    seat: seat ? { status: seat.dataset.status, selected: seat.classList.contains('selected') } : null,
    tokenSet: Boolean((document.getElementById('token') || {}).value),
    canSelect: document.getElementById('map')?.classList.contains('can-select') ?? false,
    holdButtonEnabled: hold ? !hold.disabled : null,
    selection: (document.getElementById('selection') || {}).textContent || null,
    holds: [...document.querySelectorAll('#holds li[data-hold-id]')].map((li) => ({
      holdId: li.dataset.holdId,
      text: li.innerText.replace(/\s+/g, ' ').trim(),
      buttons: [...li.querySelectorAll('button')].map((button) => button.textContent),
    })),
    statusLine: status ? status.textContent : null,
    statusKind: status ? status.dataset.kind || '' : null,
    live: document.body.dataset.live || null,
  };
}

// Waits (polling in the page) until `predicate(arg)` holds; throws `what` with what the page showed.
// When `failOnErrorUnlike` is a string, an error on the page's status line other than that text
// ends the wait at once (the page reports a failed request there).
async function waitOnPage(page, predicate, arg, { ms, what, seatId, failOnErrorUnlike = null }) {
  // One expression, evaluated by Playwright at every poll (a string is an expression to Playwright,
  // not a function to call: the predicate and its argument are written into it). The page itself
  // evals nothing, so a Content-Security-Policy is no bar.
  const expression = `((predicate, arg, failOnErrorUnlike) => {
    const status = document.getElementById('status');
    if (failOnErrorUnlike !== null && status && status.dataset.kind === 'error' && status.textContent !== failOnErrorUnlike) {
      return { error: status.textContent };
    }
    return predicate(arg) ? { done: true } : false;
  })(${predicate.toString()}, ${JSON.stringify(arg)}, ${JSON.stringify(failOnErrorUnlike)})`;
  let handle;
  try {
    handle = await page.waitForFunction(expression, undefined, { timeout: ms, polling: 100 });
  } catch (error) {
    const seen = await page.evaluate(buyerState, seatId).catch(() => null);
    const why =
      error.name === 'TimeoutError' ? `within ${ms} ms` : `(the wait failed: ${String(error.message).split('\n')[0]})`;
    throw new Error(`${what} ${why}; saw ${JSON.stringify(seen)}`);
  }
  const outcome = await handle.jsonValue();
  if (!outcome || (!outcome.done && !outcome.error)) throw new Error(`${what}: the wait ended with ${JSON.stringify(outcome)}`);
  if (outcome.error) {
    const seen = await page.evaluate(buyerState, seatId).catch(() => null);
    throw new Error(`${what}: the page reported "${outcome.error}"; saw ${JSON.stringify(seen)}`);
  }
}

// A CSS attribute selector for one seat (seat ids hold ':' and could hold quotes).
function seatSelector(seatId) {
  return `#map [data-seat-id=${JSON.stringify(seatId)}]`;
}

async function main(context) {
  const baseUrl = required('TURNSTILE_URL').replace(/\/+$/, '');
  const eventId = required('EVENT_ID');
  const token = required('TOKEN');
  const seatId = required('SEAT_ID');
  if ((env.SEAT2_ID || '').trim() === seatId) {
    throw new Error(`SEAT2_ID is SEAT_ID (${seatId}): the second phase needs another seat`);
  }
  context.screenshot = resolve(env.SCREENSHOT || 'seatmap.png');
  const executablePath = env.CHROMIUM || '/usr/bin/chromium';

  log(`launching ${executablePath}`);
  context.browser = await bounded(
    chromium.launch({
      executablePath,
      headless: true,
      timeout: LAUNCH_MS,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    }),
    LAUNCH_MS + 5_000,
    'launching chromium',
  );
  const page = await context.browser.newPage({ viewport: { width: 1280, height: 900 } });
  context.page = page;
  page.setDefaultTimeout(PAGE_READY_MS);
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') log(`page console ${message.type()}: ${message.text()}`);
  });
  page.on('pageerror', (error) => log(`page error: ${error.message}`));
  let navigations = 0;
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) navigations += 1;
  });

  const url = `${baseUrl}/?event=${encodeURIComponent(eventId)}`;
  log(`opening ${url}`);
  const response = await page.goto(url, { waitUntil: 'domcontentloaded', timeout: PAGE_READY_MS });
  if (!response || !response.ok()) throw new Error(`GET ${url} answered ${response ? response.status() : 'nothing'}`);

  log(`waiting for seat ${seatId} to show available with the live stream connected`);
  try {
    await page.waitForFunction(
      (id) => {
        const seat = document.querySelector(`[data-seat-id="${CSS.escape(id)}"]`);
        return Boolean(seat) && seat.dataset.status === 'available' && document.body.dataset.live === 'true';
      },
      seatId,
      { timeout: PAGE_READY_MS, polling: 100 },
    );
  } catch (error) {
    const seen = await page.evaluate(seatState, seatId).catch(() => null);
    throw new Error(`the page never showed ${seatId} available and live within ${PAGE_READY_MS} ms; saw ${JSON.stringify(seen)}`);
  }
  // A marker that a reload would wipe: the held seat must reach this very document.
  const marker = randomUUID();
  await page.evaluate((value) => {
    window.__seatmapMarker = value;
  }, marker);
  const before = await page.evaluate(seatState, seatId);
  log(`seat ${seatId} is available, colour ${before.color}, ${before.version}`);
  const navigationsBefore = navigations;

  const holdUrl = `${baseUrl}/v1/events/${encodeURIComponent(eventId)}/holds`;
  let holdResponse;
  try {
    holdResponse = await fetch(holdUrl, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ seats: { seatIds: [seatId] }, idempotencyKey: `browser-${randomUUID()}` }),
      signal: AbortSignal.timeout(HOLD_REQUEST_MS),
    });
  } catch (error) {
    throw new Error(`POST ${holdUrl} failed: ${error.message}`);
  }
  const holdText = await holdResponse.text();
  if (holdResponse.status !== 200) throw new Error(`POST ${holdUrl} answered ${holdResponse.status}: ${holdText}`);
  let holdId;
  try {
    holdId = JSON.parse(holdText).hold.holdId;
  } catch {
    // Reported below.
  }
  if (!holdId) throw new Error(`POST ${holdUrl} answered 200 without hold.holdId: ${holdText}`);
  context.holdId = holdId;
  process.stdout.write(`hold ${holdId} placed on ${seatId}\n`);

  log(`waiting up to ${SEAT_HELD_MS} ms for the page to show ${seatId} held`);
  try {
    await page.waitForFunction(
      ({ id, color }) => {
        const seat = document.querySelector(`[data-seat-id="${CSS.escape(id)}"]`);
        return Boolean(seat) && seat.dataset.status === 'held' && getComputedStyle(seat).backgroundColor !== color;
      },
      { id: seatId, color: before.color },
      { timeout: SEAT_HELD_MS, polling: 100 },
    );
  } catch (error) {
    const seen = await page.evaluate(seatState, seatId).catch(() => null);
    throw new Error(`the page did not show ${seatId} held in a new colour within ${SEAT_HELD_MS} ms; saw ${JSON.stringify(seen)}`);
  }
  const after = await page.evaluate(seatState, seatId);
  if (after.marker !== marker || navigations !== navigationsBefore) {
    throw new Error('the page was reloaded or navigated: the change did not arrive over its live stream');
  }
  log(`seat ${seatId} is held, colour ${after.color}, ${after.version}`);

  const buyer = await buyOnThePage(page, { token, seatId, heldColor: after.color });
  const last = await page.evaluate(seatState, seatId);
  if (last.status !== 'held') throw new Error(`seat ${seatId} (held through the API) shows ${last.status} at the end`);
  if (last.marker !== marker || navigations !== navigationsBefore) {
    throw new Error('the page was reloaded or navigated while it was used to hold and book');
  }

  mkdirSync(dirname(context.screenshot), { recursive: true });
  await page.screenshot({ path: context.screenshot, fullPage: true, timeout: SCREENSHOT_MS });
  log(`screenshot written to ${context.screenshot}`);
  return { ok: true, holdId, before: before.color, after: after.color, ...buyer, booked: true };
}

// Phase 2: the page used like a buyer, from token to booking, without leaving the document.
async function buyOnThePage(page, { token, seatId, heldColor }) {
  log('typing the buyer token into the page');
  const tokenInput = page.locator('#token');
  await tokenInput.fill(token, { timeout: PAGE_ACTION_MS });
  await waitOnPage(page, () => document.getElementById('map').classList.contains('can-select'), null, {
    ms: PAGE_ACTION_MS,
    what: 'the page did not take the token (its map never became selectable)',
    seatId,
  });

  let seat2 = (env.SEAT2_ID || '').trim();
  if (seat2) {
    await waitOnPage(
      page,
      (id) => document.querySelector(`[data-seat-id="${CSS.escape(id)}"]`)?.dataset.status === 'available',
      seat2,
      { ms: PAGE_ACTION_MS, what: `the page never showed SEAT2_ID ${seat2} available`, seatId: seat2 },
    );
  } else {
    seat2 = await page.evaluate((skip) => {
      const seat = [...document.querySelectorAll('#map [data-seat-id][data-status="available"]')].find(
        (element) => element.dataset.seatId !== skip,
      );
      return seat ? seat.dataset.seatId : null;
    }, seatId);
    if (!seat2) throw new Error(`the page shows no available seat other than ${seatId} to click`);
  }
  const availableColor = (await page.evaluate(seatState, seat2)).color;
  const holdsBefore = await page.evaluate(() =>
    [...document.querySelectorAll('#holds li[data-hold-id]')].map((li) => li.dataset.holdId),
  );

  log(`clicking seat ${seat2}`);
  await page.locator(seatSelector(seat2)).click({ timeout: PAGE_ACTION_MS });
  await waitOnPage(
    page,
    (id) => {
      const seat = document.querySelector(`[data-seat-id="${CSS.escape(id)}"]`);
      return seat && seat.classList.contains('selected') && !document.getElementById('hold').disabled;
    },
    seat2,
    { ms: PAGE_ACTION_MS, what: `clicking ${seat2} did not select it with the Hold button enabled`, seatId: seat2 },
  );

  let statusBefore = await page.evaluate(() => document.getElementById('status').textContent);
  log(`pressing Hold for ${seat2}`);
  await page.locator('#hold').click({ timeout: PAGE_ACTION_MS });
  // The seat turns held over the live stream, the hold appears (active) in the Holds panel.
  await waitOnPage(
    page,
    ({ id, known }) => {
      const seat = document.querySelector(`[data-seat-id="${CSS.escape(id)}"]`);
      if (!seat || seat.dataset.status !== 'held') return false;
      return [...document.querySelectorAll('#holds li[data-hold-id]')].some(
        // As shown: a line per field; the seats line lists seat ids, the status line starts with the status.
        (li) => {
          const lines = li.innerText.split('\n').map((line) => line.trim());
          return (
            !known.includes(li.dataset.holdId) &&
            lines.some((line) => line.split(',').map((part) => part.trim()).includes(id)) &&
            lines.some((line) => line.split(' · ')[0] === 'active')
          );
        },
      );
    },
    { id: seat2, known: holdsBefore },
    {
      ms: PAGE_HOLD_MS,
      what: `after Hold the page did not show ${seat2} held and its hold active in the Holds panel`,
      seatId: seat2,
      failOnErrorUnlike: statusBefore,
    },
  );
  const pageHolds = await page.evaluate(
    ({ id, known }) =>
      [...document.querySelectorAll('#holds li[data-hold-id]')]
        .filter(
          (li) =>
            !known.includes(li.dataset.holdId) &&
            li.innerText.split('\n').some((line) => line.split(',').map((part) => part.trim()).includes(id)),
        )
        .map((li) => li.dataset.holdId),
    { id: seat2, known: holdsBefore },
  );
  if (pageHolds.length !== 1) {
    const seen = await page.evaluate(buyerState, seat2).catch(() => null);
    throw new Error(
      `the Holds panel shows ${pageHolds.length} new holds of ${seat2}: ${JSON.stringify(pageHolds)}; saw ${JSON.stringify(seen)}`,
    );
  }
  const pageHoldId = pageHolds[0];
  const heldNow = await page.evaluate(seatState, seat2);
  if (heldNow.color !== heldColor) {
    throw new Error(`${seat2} shows held in ${heldNow.color}, not in the held colour ${heldColor} of ${seatId}`);
  }
  log(`the page holds ${seat2}: hold ${pageHoldId}, ${heldNow.version}`);
  process.stdout.write(`hold ${pageHoldId} placed on ${seat2} from the page\n`);

  const holdItem = page.locator(`#holds li[data-hold-id=${JSON.stringify(pageHoldId)}]`);
  statusBefore = await page.evaluate(() => document.getElementById('status').textContent);
  log(`pressing Confirm for hold ${pageHoldId}`);
  await holdItem.getByRole('button', { name: 'Confirm', exact: true }).click({ timeout: PAGE_ACTION_MS });
  // The seat turns booked over the live stream and the hold shows confirmed with its booking.
  await waitOnPage(
    page,
    ({ id, holdId }) => {
      const seat = document.querySelector(`[data-seat-id="${CSS.escape(id)}"]`);
      const item = [...document.querySelectorAll('#holds li[data-hold-id]')].find(
        (li) => li.dataset.holdId === holdId,
      );
      const confirmed =
        item &&
        item.innerText.split('\n').some((line) => {
          const parts = line.trim().split(' · ');
          return parts[0] === 'confirmed' && parts.some((part) => /^booking \S+$/.test(part));
        });
      return seat && seat.dataset.status === 'booked' && confirmed;
    },
    { id: seat2, holdId: pageHoldId },
    {
      ms: PAGE_BOOK_MS,
      what: `after Confirm the page did not show ${seat2} booked and hold ${pageHoldId} confirmed`,
      seatId: seat2,
      failOnErrorUnlike: statusBefore,
    },
  );
  const booked = await page.evaluate(seatState, seat2);
  if (booked.color === heldColor || booked.color === availableColor) {
    throw new Error(`${seat2} shows booked in ${booked.color}, the colour of a held or available seat`);
  }
  const bookingId = await holdItem.evaluate((li) => {
    for (const line of li.innerText.split('\n')) {
      const parts = line.trim().split(' · ');
      const booking = parts[0] === 'confirmed' && parts.find((part) => /^booking \S+$/.test(part));
      if (booking) return booking.slice('booking '.length);
    }
    return null;
  });
  if (!bookingId) throw new Error(`hold ${pageHoldId} shows confirmed without a booking id`);
  log(`seat ${seat2} is booked (booking ${bookingId}), colour ${booked.color}, ${booked.version}`);
  process.stdout.write(`booking ${bookingId} confirmed from the page for ${seat2}\n`);
  return { clickedSeat: seat2, pageHoldId, bookingId };
}

async function run() {
  const context = {};
  const watchdog = setTimeout(() => {
    process.stderr.write(`seatmap: FAILED: still running after ${WATCHDOG_MS} ms\n`);
    process.exit(1);
  }, WATCHDOG_MS);
  watchdog.unref();
  let result = null;
  try {
    result = await main(context);
  } catch (error) {
    process.stderr.write(`seatmap: FAILED: ${error.message}\n`);
    if (context.page && context.screenshot) {
      try {
        mkdirSync(dirname(context.screenshot), { recursive: true });
        await context.page.screenshot({ path: context.screenshot, fullPage: true, timeout: SCREENSHOT_MS });
        process.stderr.write(`seatmap: screenshot of the failure written to ${context.screenshot}\n`);
      } catch (shotError) {
        process.stderr.write(`seatmap: no screenshot either: ${shotError.message}\n`);
      }
    }
  } finally {
    if (context.browser) {
      await bounded(context.browser.close(), CLOSE_MS, 'closing chromium').catch((error) => {
        process.stderr.write(`seatmap: ${error.message}\n`);
      });
    }
  }
  if (result) process.stdout.write(`${JSON.stringify(result)}\n`);
  const code = result ? 0 : 1;
  // Exit once stdout is flushed (a pipe may still hold the last line).
  process.stdout.write('', () => process.exit(code));
}

run();

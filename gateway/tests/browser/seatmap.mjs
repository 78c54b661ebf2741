// Browser check of the node's live seat map: opens the page in Debian's chromium, holds a seat
// through the HTTP API (from here, not from the page) and waits for the page to show the seat held,
// with no reload: the change must arrive over the page's Server-Sent Events stream.
//
//   TURNSTILE_URL=http://127.0.0.1:PORT EVENT_ID=... TOKEN=... SEAT_ID=101:A:1 \
//   SCREENSHOT=/tmp/seatmap.png [CHROMIUM=/usr/bin/chromium] node gateway/tests/browser/seatmap.mjs
//
// Progress goes to stderr, the hold id and, last, one JSON line to stdout:
//   {"ok":true,"holdId":"...","before":"rgb(...)","after":"rgb(...)"}
// Exit 0 on success; 1 with the reason on stderr (and a screenshot when one can be taken).

import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import { chromium } from 'playwright-core';

const LAUNCH_MS = 30_000;
const PAGE_READY_MS = 20_000;
const HOLD_REQUEST_MS = 10_000;
const SEAT_HELD_MS = 15_000;
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

async function main(context) {
  const baseUrl = required('TURNSTILE_URL').replace(/\/+$/, '');
  const eventId = required('EVENT_ID');
  const token = required('TOKEN');
  const seatId = required('SEAT_ID');
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

  mkdirSync(dirname(context.screenshot), { recursive: true });
  await page.screenshot({ path: context.screenshot, fullPage: true, timeout: SCREENSHOT_MS });
  log(`screenshot written to ${context.screenshot}`);
  return { ok: true, holdId, before: before.color, after: after.color };
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

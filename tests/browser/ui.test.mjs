// The gateway's web UI in a real browser (Debian's chromium, driven by playwright-core): an operator
// searches a name, reads the chart and the table, opens an event, shares the URL, mistypes.
//
// DSTORE_GATEWAY_URL: the gateway to test (http://127.0.0.1:PORT); DSTORE_UI_EXPECT: what a search
// of one name must find, as JSON {"name": "h148.example.test.", "count": 2, "qid": "..."}. Without
// DSTORE_GATEWAY_URL the test starts stub-server.mjs and takes its expectations. Screenshots go to
// target/ui-screenshots/ (or DSTORE_UI_SCREENSHOTS). Every wait is bounded.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startStub } from './stub-server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const SHOTS = process.env.DSTORE_UI_SCREENSHOTS || path.resolve(here, '../../target/ui-screenshots');
const WAIT = 5000;
const TEST = { timeout: 45_000 };

let base;
let expected;
let stub;
let context;
let profile;

before(async () => {
  if (process.env.DSTORE_GATEWAY_URL) {
    base = process.env.DSTORE_GATEWAY_URL.replace(/\/+$/, '');
  } else {
    stub = await startStub({ token: '' });
    base = stub.url;
  }
  expected = process.env.DSTORE_UI_EXPECT ? JSON.parse(process.env.DSTORE_UI_EXPECT) : stub && stub.expect;
  assert.ok(expected && expected.name && expected.count > 0, 'DSTORE_UI_EXPECT must name what a search finds');
  mkdirSync(SHOTS, { recursive: true });
  profile = mkdtempSync(path.join(os.tmpdir(), 'dstore-ui-profile-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    viewport: { width: 1440, height: 900 },
    timeout: 30_000,
  });
  context.setDefaultTimeout(WAIT);
  context.setDefaultNavigationTimeout(10_000);
});

after(async () => {
  if (context) await context.close();
  if (stub) await stub.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

// A new tab that records the page's uncaught errors, which every test checks at its end.
async function openPage(t, colorScheme = 'light') {
  const page = await context.newPage();
  await page.emulateMedia({ colorScheme });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  t.after(async () => {
    await page.close();
    assert.deepEqual(errors, [], 'the page threw');
  });
  return page;
}

const bare = (name) => name.toLowerCase().replace(/\.$/, '');

// Waits until no search is running and the table holds `n` rows (any number when n is null).
async function settled(page, n = null) {
  await page.waitForFunction((want) => {
    const rows = document.querySelectorAll('#results tbody tr');
    return !document.body.classList.contains('busy') && (want == null || rows.length === want);
  }, n, { timeout: WAIT });
}

async function rows(page) {
  return page.$$eval('#results tbody tr', (trs) => trs.map((tr) => ({
    qid: tr.dataset.qid, time: tr.cells[0].textContent, kind: tr.cells[1].textContent, name: tr.cells[3].textContent,
  })));
}

async function searchName(page) {
  await page.goto(`${base}/`);
  await settled(page);
  await page.selectOption('#range', 'all');
  await page.fill('#q', expected.name);
  await page.press('#q', 'Enter');
  await settled(page, expected.count);
}

test('searching a name shows its events, the chart and the breakdowns', TEST, async (t) => {
  const page = await openPage(t);
  await searchName(page);
  const found = await rows(page);
  assert.equal(found.length, expected.count);
  for (const r of found) assert.equal(bare(r.name), bare(expected.name));
  if (expected.qid) assert.ok(found.some((r) => r.qid === expected.qid), `no row has the qid ${expected.qid}`);

  const bars = await page.$$eval('#chart svg rect.bar', (rects) => rects.map((r) => ({
    height: r.getBoundingClientRect().height, count: Number(r.dataset.count),
  })));
  assert.ok(bars.length > 0, 'the chart has no bars');
  assert.ok(bars.every((b) => b.height > 0), 'a bar has no height');
  assert.equal(bars.reduce((a, b) => a + b.count, 0), expected.count, 'the bars do not add up to the events');
  assert.ok(await page.locator('#chart svg text.axis').count() >= 4, 'the chart has no axis labels');
  const names = await page.locator('#top-qname button .label').allTextContents();
  assert.deepEqual(names.map(bare), [bare(expected.name)]);
  assert.match(await page.textContent('#total'), new RegExp(`^${expected.count.toLocaleString('en-US')} events?$`));
  assert.ok(await page.locator('#error').isHidden());
  await page.screenshot({ path: path.join(SHOTS, 'search-light.png'), fullPage: true });
});

test('clicking an event opens every field of its query and response', TEST, async (t) => {
  const page = await openPage(t);
  await searchName(page);
  const row = expected.qid
    ? page.locator(`#results tbody tr[data-qid="${expected.qid}"]`).first()
    : page.locator('#results tbody tr').first();
  const qid = await row.getAttribute('data-qid');
  await row.click();
  await page.locator('#detail').waitFor({ state: 'visible' });
  await page.locator('#detail-body section.event').first().waitFor();
  assert.equal(await page.textContent('#detail-qid'), qid);
  assert.match(await page.textContent('#detail-title'), new RegExp(bare(expected.name).replace(/\./g, '\\.')));
  const sections = page.locator('#detail-body section.event');
  const n = await sections.count();
  assert.ok(n >= 1);
  for (let i = 0; i < n; i++) {
    const section = sections.nth(i);
    assert.equal(await section.locator('tr[data-key="qid"] td').textContent(), qid);
    assert.equal(bare(await section.locator('tr[data-key="question"] td').textContent()), bare(expected.name));
    for (const key of ['requestor', 'timeSec', 'type', 'messageType']) {
      assert.equal(await section.locator(`tr[data-key="${key}"]`).count(), 1, `the detail lacks ${key}`);
    }
  }
  await page.screenshot({ path: path.join(SHOTS, 'detail-light.png') });
  await page.keyboard.press('Escape');
  await page.locator('#detail').waitFor({ state: 'hidden' });
});

test('the URL holds the search, and opening it again gives the same results', TEST, async (t) => {
  const page = await openPage(t);
  await searchName(page);
  const url = new URL(page.url());
  assert.equal(url.searchParams.get('q'), expected.name);
  assert.equal(url.searchParams.get('range'), 'all');
  const first = await rows(page);

  const again = await openPage(t);
  await again.goto(url.href);
  await settled(again, expected.count);
  assert.deepEqual(await rows(again), first);
  assert.equal(await again.inputValue('#q'), expected.name);
  assert.equal(await again.inputValue('#range'), 'all');
});

test('the dark color scheme is dark and readable', TEST, async (t) => {
  const page = await openPage(t, 'dark');
  await page.goto(`${base}/?${new URLSearchParams({ q: expected.name, range: 'all' })}`);
  await settled(page, expected.count);
  const [bg, fg] = await page.evaluate(() => {
    const s = getComputedStyle(document.body);
    return [s.backgroundColor, s.color];
  });
  const light = (rgb) => {
    const [r, g, b] = rgb.match(/\d+/g).map(Number);
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
  };
  assert.ok(light(bg) < 0.2, `background ${bg} is not dark`);
  assert.ok(light(fg) > 0.7, `text ${fg} is not light`);
  await page.screenshot({ path: path.join(SHOTS, 'search-dark.png'), fullPage: true });
  await page.locator('#results tbody tr').first().click();
  await page.locator('#detail-body section.event').first().waitFor();
  await page.screenshot({ path: path.join(SHOTS, 'detail-dark.png') });
});

test('a bad search says what is wrong next to the form', TEST, async (t) => {
  const page = await openPage(t);
  await page.goto(`${base}/?range=all&qtype=BOGUS`);
  await page.locator('#error').waitFor({ state: 'visible' });
  assert.match(await page.textContent('#error'), /BOGUS/);
  assert.equal(await page.inputValue('#qtype'), 'BOGUS');
  await settled(page, 0);

  await page.selectOption('#qtype', '');
  await settled(page);
  assert.ok(await page.locator('#error').isHidden(), 'a good search still shows the error');
  await page.fill('#q', '10.0.0.0/33');
  await page.press('#q', 'Enter');
  await page.locator('#error').waitFor({ state: 'visible' });
  assert.match(await page.textContent('#error'), /10\.0\.0\.0\/33/);
  await settled(page, 0);
  await page.screenshot({ path: path.join(SHOTS, 'error-light.png') });
});

test('a 401 asks for a bearer token, keeps it and sends it', TEST, async (t) => {
  const page = await openPage(t);
  // The gateway under test may run without a token: the browser plays the part of one that wants it.
  const sent = [];
  await page.route('**/api/v1/**', (route) => {
    const auth = route.request().headers().authorization;
    sent.push(auth);
    if (auth !== 'Bearer sesame') {
      return route.fulfill({ status: 401, contentType: 'application/json',
        body: JSON.stringify({ error: 'a bearer token is needed: Authorization: Bearer <token>' }) });
    }
    return route.continue();
  });
  try {
    await page.goto(`${base}/?${new URLSearchParams({ q: expected.name, range: 'all' })}`);
    await page.locator('#auth').waitFor({ state: 'visible' });
    await page.fill('#token', 'sesame');
    await page.press('#token', 'Enter');
    await settled(page, expected.count);
    assert.ok(await page.locator('#auth').isHidden());
    assert.equal(await page.evaluate(() => localStorage.getItem('dstore.token')), 'sesame');
    assert.equal(sent.at(-1), 'Bearer sesame');
  } finally {
    await page.evaluate(() => localStorage.removeItem('dstore.token'));
  }
});

test('"Older" loads the next page of a long result', TEST, async (t) => {
  const page = await openPage(t);
  await page.goto(`${base}/?range=all`);
  await settled(page);
  if (await page.locator('#older').isHidden()) return t.skip('the store holds less than one page');
  await page.screenshot({ path: path.join(SHOTS, 'overview-light.png') });
  const before = await rows(page);
  const total = Number((await page.textContent('#total')).replace(/\D/g, ''));
  await page.click('#older');
  if (total > before.length) {
    await page.waitForFunction((n) => document.querySelectorAll('#results tbody tr').length > n, before.length,
      { timeout: WAIT });
  } else {
    await page.locator('#older').waitFor({ state: 'hidden' });
  }
  const after = await rows(page);
  assert.deepEqual(after.slice(0, before.length), before);
  // Neither lost nor repeated: two pages hold what the summary counts, up to two pages' worth.
  assert.equal(after.length, Math.min(total, 2 * before.length));
  assert.equal(await page.locator('#older').isVisible(), total > after.length);
});

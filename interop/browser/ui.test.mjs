// The emulator's browser view in headless Chromium, driven by playwright-core: sign in,
// open a store, see keys written by the official client, preview a JSON value, watch a job
// go pending → running → succeeded while the `serverless_jobs` example drives it, page
// through 10,000 keys, delete a key. Screenshots go to $SCREENSHOTS.
//
// `emulator/tests/browser.rs` starts the emulator and runs this file with node's test runner;
// it passes everything through the environment:
//   CHROMIUM               the browser binary (Debian's chromium)
//   CHROMIUM_FLAGS         its flags, separated by spaces
//   BLOBS_URL              the emulator's base URL
//   BLOBS_UI_LINK          the signed-in link the emulator printed at start
//   BLOBS_TOKEN            its token (typed into the login form)
//   NETLIFY_BLOBS_CONTEXT  the context it printed, for the official client
//   SERVERLESS_JOBS        the built `serverless_jobs` example
//   SCREENSHOTS            where to write the PNG files
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { getStore } from '@netlify/blobs';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} must be set`);
  return value;
};

const UI = `${env('BLOBS_URL')}/.well-known/blobs-emulator/ui/`;
const SHOTS = env('SCREENSHOTS');
const children = new Set();

// The flags for Chromium as root on a machine whose only network is the loopback.
const FLAGS = env('CHROMIUM_FLAGS').split(' ');

/** Runs the serverless_jobs example; resolves with its stdout once it exits successfully. */
function example(args) {
  const child = spawn(env('SERVERLESS_JOBS'), args, {
    env: { ...process.env, NETLIFY_BLOBS_TOKEN: env('BLOBS_TOKEN') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk) => { out += chunk; });
  child.stderr.on('data', (chunk) => { err += chunk; });
  return once(child, 'exit').then(([code]) => {
    children.delete(child);
    assert.equal(code, 0, `serverless_jobs ${args.join(' ')} failed: ${err}`);
    return out;
  });
}

after(() => {
  for (const child of children) child.kill('SIGKILL');
});

test('the browser view in Chromium', async (t) => {
  const shop = getStore('shop');
  await shop.setJSON('cart/42', { items: ['pen', 'ink'], total: 30 }, { metadata: { owner: 'alice' } });
  const hostileKey = '<script>window.__pwned = "key"</script>';
  const hostileValue = '<img src=x onerror="window.__pwned = \'value\'"><script>window.__pwned = "value"</script>';
  await shop.set(hostileKey, hostileValue);
  await shop.set('binary', new Uint8Array([0, 1, 2, 255]).buffer);

  const browser = await chromium.launch({ executablePath: env('CHROMIUM'), headless: true, args: FLAGS });
  t.after(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('console', (message) => { if (message.type() === 'error') errors.push(message.text()); });

  await t.test('a wrong token is refused and the right one signs in', async () => {
    await page.goto(UI);
    await page.locator('#login').waitFor();
    await page.fill('#token', 'not-the-token');
    await page.click('#login button[type=submit]');
    await page.locator('#login-error', { hasText: 'refused' }).waitFor();
    await page.fill('#token', env('BLOBS_TOKEN'));
    await page.click('#login button[type=submit]');
    await page.locator('#view h1', { hasText: 'Sites' }).waitFor();
    await page.locator('#view a', { hasText: 'local-site' }).waitFor();
    assert.equal(await page.locator('#login').isVisible(), false);
    // The refused attempt logged a 403 in the console; from here on nothing may fail.
    errors.length = 0;
  });

  await t.test('the signed-in link signs in and leaves no token in the address bar', async () => {
    const other = await context.newPage();
    // A new context would not share the session storage; the link alone must do.
    const fresh = await browser.newContext();
    const linked = await fresh.newPage();
    await linked.goto(env('BLOBS_UI_LINK'));
    await linked.locator('#view a', { hasText: 'local-site' }).waitFor();
    assert.ok(!linked.url().includes('token'), linked.url());
    await fresh.close();
    await other.close();
  });

  await t.test('a store shows the keys the official client wrote, escaped', async () => {
    await page.click('#view a:text-is("local-site")');
    await page.click('#view a:text-is("shop")');
    const row = page.locator('tr[data-key="cart/42"]');
    await row.waitFor();
    assert.equal(await row.locator('td').nth(1).textContent(), '34 B');
    assert.match(await row.locator('td.meta').textContent(), /"owner":"alice"/);
    const hostileRow = page.locator('td.key', { hasText: hostileKey });
    assert.equal(await hostileRow.count(), 1);
    await hostileRow.click();
    const shown = page.locator('.panel pre.value');
    await page.locator('.panel h2', { hasText: hostileKey }).waitFor();
    assert.equal(await shown.textContent(), hostileValue);
    assert.equal(await page.locator('.value-kind').textContent(), 'text');
    const dom = await page.evaluate(() => ({
      pwned: window.__pwned,
      scripts: document.scripts.length,
      images: document.images.length,
    }));
    assert.deepEqual(dom, { pwned: undefined, scripts: 1, images: 0 });
  });

  await t.test('a JSON value is pretty-printed with its metadata', async () => {
    await page.click('tr[data-key="cart/42"]');
    await page.locator('.panel h2', { hasText: 'cart/42' }).waitFor();
    assert.equal(await page.locator('.value-kind').textContent(), 'JSON');
    assert.equal(
      await page.locator('.panel pre.value').textContent(),
      JSON.stringify({ items: ['pen', 'ink'], total: 30 }, null, 2),
    );
    assert.match(await page.locator('.panel pre.metadata').textContent(), /"owner": "alice"/);
    assert.doesNotMatch(await page.locator('.split > div, .stack > div').first().innerText(), /\b(null|undefined|NaN)\b/);
    await page.screenshot({ path: path.join(SHOTS, 'store.png'), fullPage: true });
  });

  await t.test('a binary value shows as hex, and delete removes the key', async () => {
    await page.click('tr[data-key="binary"]');
    await page.locator('.panel h2', { hasText: 'binary' }).waitFor();
    assert.equal(await page.locator('.value-kind').textContent(), 'binary');
    assert.match(await page.locator('.panel pre.value').textContent(), /^00000000 {2}00 01 02 ff/);
    await page.click('.panel button:text-is("Delete")');
    await page.click('.panel button:text-is("Yes, delete")');
    await page.locator('.panel', { hasText: 'Deleted binary.' }).waitFor();
    await page.locator('tr[data-key="binary"]').waitFor({ state: 'detached' });
    assert.equal(await shop.get('binary'), null);
    assert.equal(await shop.get('cart/42', { type: 'json' }).then((v) => v.total), 30);
  });

  await t.test('10,000 keys are paged', async () => {
    await page.click('#crumbs a:text-is("local-site")');
    await page.click('#view a:text-is("many")');
    await page.locator('tr[data-key="item/00000"]').waitFor();
    assert.equal(await page.locator('tbody tr').count(), 100);
    await page.locator('.pager', { hasText: 'Page 1 (1–100)' }).waitFor();
    await page.click('.pager button:text-is("Next")');
    await page.locator('tr[data-key="item/00100"]').waitFor();
    await page.locator('.pager', { hasText: 'Page 2 (101–200)' }).waitFor();
    await page.fill('input[type=search]', 'item/0999');
    await page.click('button:text-is("Filter")');
    await page.locator('tr[data-key="item/09999"]').waitFor();
    assert.equal(await page.locator('tbody tr').count(), 10);
  });

  await t.test('a job goes pending, running, succeeded while a worker drives it', async () => {
    const spec = env('BLOBS_URL');
    const triggered = await example(['trigger', '--store', spec]);
    const id = triggered.split('\n').find((line) => line.startsWith('job_'));
    assert.ok(id, `trigger printed no job id: ${triggered}`);
    await page.click('#crumbs a:text-is("local-site")');
    await page.click('#view a:text-is("rubric-jobs")');
    await page.click('.tabs a:text-is("Jobs")');
    const row = page.locator(`tr[data-key="jobs/${id}"]`);
    await row.and(page.locator('[data-status="pending"]')).waitFor();
    await page.screenshot({ path: path.join(SHOTS, 'jobs-pending.png'), fullPage: true });

    // Slow steps, so that the running state lasts several refreshes of the page.
    const worker = example(['background', '--store', spec, id, '--step-ms', '1500']);
    await row.and(page.locator('[data-status="running"]')).waitFor();
    await row.locator('progress').waitFor();
    assert.match(await row.textContent(), /background-\d+/);
    await page.click(`tr[data-key="jobs/${id}"]`);
    await page.locator('.panel h2', { hasText: `jobs/${id}` }).waitFor();
    assert.doesNotMatch(await page.locator('.split > div, .stack > div').first().innerText(), /\b(null|undefined|NaN)\b/);
    await page.screenshot({ path: path.join(SHOTS, 'jobs.png'), fullPage: true });
    await row.and(page.locator('[data-status="succeeded"]')).waitFor({ timeout: 30_000 });
    await worker;
    // The preview follows the record: the result is there once it succeeded.
    await page.locator('.panel pre.value', { hasText: '"points": 30' }).waitFor();

    await page.selectOption('select[aria-label="Status"]', 'pending');
    await page.locator('#view', { hasText: 'No pending job on this page.' }).waitFor();
    await page.selectOption('select[aria-label="Status"]', 'succeeded');
    await row.waitFor();
  });

  await t.test('the page made no errors', () => {
    assert.deepEqual(errors, []);
  });
});

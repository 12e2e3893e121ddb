// The npm packages as a user gets them: `emulator/tests/npm_package.rs` installs both
// tarballs into a fresh project, copies this file there and runs it with `node --test`.
// The official @netlify/blobs client runs against an emulator started through `npx` (its
// context in BLOBS_NPX_CONTEXT) and against ones from startEmulator(), which must leave no
// process and no temporary directory behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { getDeployStore, getStore, listStores } from '@netlify/blobs';
import { startEmulator, binaryPath } from '@blobjobs/emulator';

const require = createRequire(import.meta.url);

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    assert.equal(error.code, 'ESRCH');
    return false;
  }
}

/** Runs a command to its end; resolves with its exit code and output. */
async function run(command, args, options = {}) {
  const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => { stdout += chunk; });
  child.stderr.on('data', (chunk) => { stderr += chunk; });
  const [code] = await once(child, 'exit');
  return { code, stdout, stderr };
}

/** Every operation the issue names, with the official client, under store `name`. */
async function exercise(name) {
  const store = getStore(name);
  await store.set('a', 'one');
  assert.equal(await store.get('a'), 'one');

  await store.setJSON('job/1', { status: 'pending' }, { metadata: { owner: 'alice' } });
  const entry = await store.getWithMetadata('job/1', { type: 'json' });
  assert.deepEqual(entry.data, { status: 'pending' });
  assert.deepEqual(entry.metadata, { owner: 'alice' });
  assert.match(entry.etag, /^".+"$/);

  const { blobs } = await store.list();
  assert.deepEqual(blobs.map((b) => b.key).sort(), ['a', 'job/1']);
  const { directories } = await store.list({ directories: true });
  assert.deepEqual(directories, ['job']);

  const created = await store.set('cond', 'x', { onlyIfNew: true });
  assert.equal(created.modified, true);
  assert.equal((await store.set('cond', 'y', { onlyIfNew: true })).modified, false);
  assert.equal((await store.set('cond', 'y', { onlyIfMatch: '"stale"' })).modified, false);
  assert.equal((await store.set('cond', 'z', { onlyIfMatch: created.etag })).modified, true);
  assert.equal(await store.get('cond'), 'z');

  const deploy = getDeployStore();
  await deploy.set('asset', 'deployed');
  assert.equal(await deploy.get('asset'), 'deployed');

  assert.ok((await listStores()).stores.includes(name));
  await store.delete('a');
  assert.equal(await store.get('a'), null);
}

test('the emulator started through npx serves the official client', { skip: !process.env.BLOBS_NPX_CONTEXT }, async () => {
  process.env.NETLIFY_BLOBS_CONTEXT = process.env.BLOBS_NPX_CONTEXT;
  await exercise('through-npx');
});

test('startEmulator serves the official client and stop() leaves nothing behind', async () => {
  const emulator = await startEmulator();
  assert.match(emulator.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(emulator.env.NETLIFY_BLOBS_CONTEXT, emulator.context);
  assert.ok(fs.statSync(emulator.dir).isDirectory());
  assert.ok(alive(emulator.pid));
  process.env.NETLIFY_BLOBS_CONTEXT = emulator.context;
  await exercise('through-start-emulator');

  // A child process finds the emulator through `env` alone.
  const script = "import('@netlify/blobs').then(async ({ getStore }) => " +
    "console.log(await getStore('through-start-emulator').get('job/1')))";
  const env = { ...process.env, NETLIFY_BLOBS_CONTEXT: '', ...emulator.env };
  const child = await run(process.execPath, ['-e', script], { env });
  assert.equal(child.code, 0, child.stderr);
  assert.equal(child.stdout.trim(), '{"status":"pending"}');

  // The browser view answers with the token and only with it.
  const api = `${emulator.url}/.well-known/blobs-emulator/ui/api/sites`;
  assert.equal((await fetch(api)).status, 401);
  const sites = await fetch(api, { headers: { authorization: `Bearer ${emulator.token}` } });
  assert.deepEqual(await sites.json(), { sites: [{ id: 'local-site', stores: 2 }] });
  assert.ok(emulator.uiUrl.startsWith(`${emulator.url}/.well-known/blobs-emulator/ui/#token=`));

  await emulator.stop();
  assert.equal(alive(emulator.pid), false);
  assert.equal(fs.existsSync(emulator.dir), false);
  await emulator.stop();
});

test('a given directory keeps its data across restarts; memory works too', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tarball-test-'));
  try {
    const first = await startEmulator({ dir, token: 'kept-token', port: 0 });
    // The explicit form a function under `netlify dev` would use.
    const options = { name: 'kept', siteID: first.site, edgeURL: first.url, token: first.token };
    await getStore(options).set('k', 'v');
    await first.stop();
    assert.ok(fs.existsSync(dir), 'a given directory is the caller\'s');

    const second = await startEmulator({ dir, token: 'kept-token' });
    assert.notEqual(second.pid, first.pid);
    assert.equal(await getStore({ ...options, edgeURL: second.url }).get('k'), 'v');
    await second.stop();

    const memory = await startEmulator({ inMemory: true });
    assert.equal(memory.dir, undefined);
    assert.equal(await getStore({ ...options, edgeURL: memory.url, token: memory.token }).get('k'), null);
    await memory.stop();
    assert.equal(alive(memory.pid), false);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a failed start rejects with the emulator\'s reason and leaves nothing behind', async () => {
  const before = fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('blobs-emulator-')).length;
  await assert.rejects(startEmulator({ args: ['--max-blob-size', 'lots'] }), /lots/);
  const after = fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('blobs-emulator-')).length;
  assert.equal(after, before);
  await assert.rejects(startEmulator({ dir: 'x', inMemory: true }), TypeError);
});

test('the launcher runs the binary with the same flags, or says how to get one', async () => {
  const launcher = require.resolve('@blobjobs/emulator/package.json').replace(/package\.json$/, 'bin/blobs-emulator.js');
  const version = await run(process.execPath, [launcher, '--version']);
  assert.equal(version.code, 0, version.stderr);
  assert.match(version.stdout, /^blobs-emulator \d+\.\d+\.\d+/);
  assert.ok(fs.statSync(binaryPath()).mode & 0o111, 'the binary is executable');

  // Another platform, faked before the launcher looks.
  const fake = path.join(os.tmpdir(), `fake-arch-${process.pid}.cjs`);
  fs.writeFileSync(fake, "Object.defineProperty(process, 'arch', { value: 'riscv64' });\n");
  try {
    const other = await run(process.execPath, ['--require', fake, launcher, '--version']);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /no prebuilt blobs-emulator for linux-riscv64/);
    assert.match(other.stderr, /cargo install --locked --git \S+ blobjobs-emulator/);
    assert.match(other.stderr, /BLOBS_EMULATOR_BINARY/);
  } finally {
    fs.rmSync(fake, { force: true });
  }

  const missing = await run(process.execPath, [launcher, '--version'], {
    env: { ...process.env, BLOBS_EMULATOR_BINARY: path.join(os.tmpdir(), 'no-such-binary') },
  });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /cannot start .*no-such-binary/);
});

test('a launcher killed with SIGKILL leaves no emulator behind', async () => {
  const launcher = require.resolve('@blobjobs/emulator/package.json').replace(/package\.json$/, 'bin/blobs-emulator.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sigkill-'));
  const child = spawn(process.execPath, [launcher, 'serve', '--dir', dir, '--port', '0'], {
    env: { ...process.env, BLOBS_EMULATOR_TOKEN: 'sigkill-test' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    // The banner means it serves; its record in the data directory names its pid.
    let banner = '';
    for await (const chunk of child.stdout) {
      banner += chunk;
      if (banner.includes('\n')) break;
    }
    assert.match(banner, /listening on http:\/\/127\.0\.0\.1:\d+/);
    const { pid } = JSON.parse(fs.readFileSync(path.join(dir, 'server.json'), 'utf8'));
    assert.ok(alive(pid), 'the emulator runs');
    child.kill('SIGKILL');
    await once(child, 'exit');
    const deadline = Date.now() + 10_000;
    while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const outlived = alive(pid);
    if (outlived) process.kill(pid, 'SIGTERM');
    assert.equal(outlived, false, 'the emulator outlived its launcher');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

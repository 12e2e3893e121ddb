'use strict';
// startEmulator(): a local Netlify Blobs server for a test run, on a free port, in a
// temporary (or given) directory, stopped by stop() or when the process exits.

const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const { once } = require('node:events');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const { binaryPath } = require('./lib/binary.js');

const EXPORT_PREFIX = 'export NETLIFY_BLOBS_CONTEXT=';
const HEALTH_PATH = '/.well-known/blobs-emulator/health';
const UI_PATH = '/.well-known/blobs-emulator/ui/';
/** How long stop() waits after SIGTERM before it kills the emulator outright. */
const STOP_GRACE_MS = 5000;
/** How many lines of the emulator's stderr an error message quotes. */
const KEPT_LINES = 20;

/** One GET of the health route: resolves with the status code, or rejects. */
function health(url) {
  return new Promise((resolve, reject) => {
    const request = http.get(`${url}${HEALTH_PATH}`, (response) => {
      response.resume();
      resolve(response.statusCode);
    });
    request.on('error', reject);
    request.setTimeout(1000, () => request.destroy(new Error('health check timed out')));
  });
}

async function waitHealthy(url, deadline) {
  for (;;) {
    try {
      if ((await health(url)) === 200) return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
    }
    if (Date.now() > deadline) throw new Error(`${url}${HEALTH_PATH} did not answer 200 in time`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Resolves with the context of the export line the emulator prints once it listens; rejects
 * if it exits, cannot start, or says nothing in time.
 */
function exportLine(child, stderrTail, timeoutMs) {
  return new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stdout });
    const timer = setTimeout(() => fail(new Error(
      `blobs-emulator printed no NETLIFY_BLOBS_CONTEXT within ${timeoutMs} ms`)), timeoutMs);
    function fail(error) {
      clearTimeout(timer);
      reject(error);
    }
    lines.on('line', (line) => {
      if (line.startsWith(EXPORT_PREFIX)) {
        clearTimeout(timer);
        resolve(line.slice(EXPORT_PREFIX.length).trim());
      }
    });
    child.once('error', (error) => fail(new Error(`cannot start blobs-emulator: ${error.message}`)));
    // 'close' comes after the output is read to its end, so the reason is in the tail.
    child.once('close', (code, signal) => {
      const said = stderrTail.length ? `:\n${stderrTail.join('\n')}` : '';
      fail(new Error(`blobs-emulator exited (${signal || `code ${code}`}) before it was ready${said}`));
    });
  });
}

/**
 * Starts `blobs-emulator` for a test run. See index.d.ts for the options and the result.
 */
async function startEmulator(options = {}) {
  const {
    dir,
    inMemory = false,
    token = crypto.randomBytes(24).toString('hex'),
    site = 'local-site',
    host = '127.0.0.1',
    port = 0,
    args = [],
    binary = binaryPath(),
    startTimeout = 15000,
    verbose = false,
  } = options;
  if (dir && inMemory) throw new TypeError('give either dir or inMemory, not both');
  if (!token) throw new TypeError('the token must not be empty');

  let dataDir;
  let ownDir = false;
  if (!inMemory) {
    if (dir) {
      dataDir = path.resolve(dir);
    } else {
      dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'blobs-emulator-'));
      ownDir = true;
    }
  }
  const removeOwnDir = () => {
    if (ownDir) fs.rmSync(dataDir, { recursive: true, force: true });
  };

  const argv = ['serve', '--host', host, '--port', String(port), '--site', site];
  argv.push(...(inMemory ? ['--in-memory'] : ['--dir', dataDir]));
  if (!verbose) argv.push('--quiet');
  argv.push(...args);
  // The token goes through the environment: flags show in the process list. Other
  // BLOBS_EMULATOR_* variables of the caller's shell would fight the flags given here.
  const env = { ...process.env, BLOBS_EMULATOR_TOKEN: token };
  for (const name of Object.keys(env)) {
    if (name.startsWith('BLOBS_EMULATOR_') && name !== 'BLOBS_EMULATOR_TOKEN') delete env[name];
  }
  // A test process killed outright (a crashed worker, SIGKILL) takes the emulator with it.
  env.BLOBS_EMULATOR_PARENT_PID = String(process.pid);

  const child = spawn(binary, argv, { env, stdio: ['ignore', 'pipe', verbose ? 'inherit' : 'pipe'] });
  const stderrTail = [];
  if (child.stderr) {
    readline.createInterface({ input: child.stderr }).on('line', (line) => {
      stderrTail.push(line);
      if (stderrTail.length > KEPT_LINES) stderrTail.shift();
    });
  }
  // A test run that ends without stop() still takes its emulator along.
  const onExit = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    removeOwnDir();
  };
  process.on('exit', onExit);

  let context;
  let url;
  try {
    context = await exportLine(child, stderrTail, startTimeout);
    url = JSON.parse(Buffer.from(context, 'base64').toString('utf8')).edgeURL;
    await waitHealthy(url, Date.now() + startTimeout);
  } catch (error) {
    process.off('exit', onExit);
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
    removeOwnDir();
    throw error;
  }
  // From here on the emulator does not keep Node.js running on its own: a test process
  // that is done exits, and `onExit` stops the emulator.
  child.unref();
  child.stdout.unref();
  if (child.stderr) child.stderr.unref();

  let stopping = null;
  function stop() {
    if (!stopping) {
      stopping = (async () => {
        process.off('exit', onExit);
        if (child.exitCode === null && child.signalCode === null) {
          child.ref();
          const exited = once(child, 'exit');
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
          await exited;
          clearTimeout(timer);
        }
        removeOwnDir();
      })();
    }
    return stopping;
  }

  const emulator = {
    url,
    token,
    site,
    context,
    env: { NETLIFY_BLOBS_CONTEXT: context },
    dir: dataDir,
    pid: child.pid,
    uiUrl: `${url}${UI_PATH}#token=${encodeURIComponent(token)}`,
    stop,
  };
  if (typeof Symbol.asyncDispose === 'symbol') emulator[Symbol.asyncDispose] = stop;
  return emulator;
}

module.exports = { startEmulator, binaryPath };

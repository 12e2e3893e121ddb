#!/usr/bin/env node
'use strict';
// `npx @blobjobs/emulator [flags]`: runs the prebuilt `blobs-emulator` with the same
// arguments and standard streams, passes signals on, and exits as it exits.
const { spawn } = require('node:child_process');
const { binaryPath } = require('../lib/binary.js');

let binary;
try {
  binary = binaryPath();
} catch (error) {
  process.stderr.write(`error: ${error.message}\n`);
  process.exit(1);
}

// The emulator stops by itself once this process is gone, even if it is killed with
// SIGKILL, which no handler below can pass on.
const env = { ...process.env, BLOBS_EMULATOR_PARENT_PID: String(process.pid) };
const child = spawn(binary, process.argv.slice(2), { stdio: 'inherit', env });

// Ctrl-C reaches both processes already; a signal sent to this one alone (a supervisor's
// SIGTERM) must reach the emulator too, or it would outlive its launcher.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  });
}

// `npx` runs this script under `sh -c`: a SIGTERM sent to npm alone ends npm and the shell,
// but reaches neither this process nor the emulator. Once the parent is gone (this process
// has a new one), the emulator is stopped as if the signal had come.
const parent = process.ppid;
const watch = setInterval(() => {
  if (process.ppid !== parent && child.exitCode === null && child.signalCode === null) {
    clearInterval(watch);
    child.kill('SIGTERM');
  }
}, 250);
watch.unref();

child.on('error', (error) => {
  process.stderr.write(`error: cannot start ${binary}: ${error.message}\n`);
  process.exit(1);
});

child.on('exit', (code, signal) => {
  if (signal) {
    // Die of the same signal, so that the caller sees what the emulator saw.
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
    return;
  }
  process.exit(code === null ? 1 : code);
});

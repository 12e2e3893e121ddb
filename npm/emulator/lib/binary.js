'use strict';
// Which prebuilt `blobs-emulator` this machine runs, and where npm installed it.
//
// The binary comes in one optional package per platform (esbuild's layout): npm installs
// only the package whose `os`, `cpu` and `libc` fields match the machine. Adding a platform
// means adding its package folder beside this one and a line to PACKAGES.

/** The platform packages, by `<process.platform>-<process.arch>` (`-musl` on musl Linux). */
const PACKAGES = {
  'linux-x64': '@blobjobs/emulator-linux-x64',
};

/** A binary of the user's own (built with cargo, say) that replaces the prebuilt one. */
const BINARY_ENV = 'BLOBS_EMULATOR_BINARY';

const CARGO_INSTALL =
  'cargo install --locked --git https://github.com/blobjobs/blobjobs blobjobs-emulator';

function isMusl() {
  try {
    const header = process.report.getReport().header;
    return !header.glibcVersionRuntime;
  } catch {
    return false;
  }
}

/** This machine's key in PACKAGES. */
function platformKey() {
  const key = `${process.platform}-${process.arch}`;
  return process.platform === 'linux' && isMusl() ? `${key}-musl` : key;
}

function buildItYourself() {
  return `Build it with Rust instead:\n  ${CARGO_INSTALL}\n` +
    `and point this package at it:\n  export ${BINARY_ENV}=$HOME/.cargo/bin/blobs-emulator`;
}

/**
 * The path of the `blobs-emulator` binary to run: $BLOBS_EMULATOR_BINARY if set, else the one
 * in this platform's package. Throws an error that says what to do when there is none.
 */
function binaryPath() {
  const own = process.env[BINARY_ENV];
  if (own) return own;
  const key = platformKey();
  const name = PACKAGES[key];
  if (!name) {
    throw new Error(`@blobjobs/emulator has no prebuilt blobs-emulator for ${key} ` +
      `(it has one for ${Object.keys(PACKAGES).join(', ')}). ${buildItYourself()}`);
  }
  try {
    return require.resolve(`${name}/bin/blobs-emulator`);
  } catch {
    throw new Error(`${name}, the package with blobs-emulator for ${key}, is not installed. ` +
      'It is an optional dependency of @blobjobs/emulator: install again without ' +
      `--no-optional or --omit=optional. ${buildItYourself()}`);
  }
}

module.exports = { binaryPath, platformKey, PACKAGES, BINARY_ENV };

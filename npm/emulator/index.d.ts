/** Options of {@link startEmulator}; every one has a default. */
export interface StartEmulatorOptions {
  /**
   * The data directory (created if missing, kept after `stop()`). By default a new
   * temporary directory, removed by `stop()`.
   */
  dir?: string;
  /** Keep everything in memory instead of a directory. */
  inMemory?: boolean;
  /** The bearer token clients must send. Default: 192 random bits as hex. */
  token?: string;
  /** The site ID written into the context. Default: `local-site`. */
  site?: string;
  /** The address to listen on. Default: `127.0.0.1`. */
  host?: string;
  /** The port to listen on; `0` (the default) picks a free one. */
  port?: number;
  /** More `blobs-emulator serve` flags, such as `['--max-blob-size', '1MiB']`. */
  args?: string[];
  /** The binary to run. Default: `$BLOBS_EMULATOR_BINARY`, else this platform's package. */
  binary?: string;
  /** How long to wait for the emulator to be ready, in milliseconds. Default: 15000. */
  startTimeout?: number;
  /** Show the emulator's banner and access log on this process's stderr. Default: false. */
  verbose?: boolean;
}

/** A running emulator, ready when {@link startEmulator} resolves. */
export interface Emulator {
  /** Its base URL, such as `http://127.0.0.1:39125`. */
  readonly url: string;
  /** The bearer token it accepts. */
  readonly token: string;
  /** The site ID of {@link Emulator.context}. */
  readonly site: string;
  /** The `NETLIFY_BLOBS_CONTEXT` value that points `@netlify/blobs` at it. */
  readonly context: string;
  /** `{ NETLIFY_BLOBS_CONTEXT }`, to spread into a child process's environment. */
  readonly env: { readonly NETLIFY_BLOBS_CONTEXT: string };
  /** The data directory, or `undefined` in memory. */
  readonly dir: string | undefined;
  /** The emulator's process ID. */
  readonly pid: number;
  /** The browser view, signed in (the token is in the URL fragment). */
  readonly uiUrl: string;
  /**
   * Stops the emulator (SIGTERM, then SIGKILL after 5 s) and removes the temporary
   * directory. Resolves once the process has exited; calling it again is harmless.
   */
  stop(): Promise<void>;
}

/**
 * Starts `blobs-emulator` on a free port and resolves once it answers its health check.
 * It does not keep Node.js running by itself; it is stopped by `stop()` or when this process
 * exits.
 */
export function startEmulator(options?: StartEmulatorOptions): Promise<Emulator>;

/** The path of the `blobs-emulator` binary that {@link startEmulator} and `npx` run. */
export function binaryPath(): string;

// The official client's side of `cargo xtask bench client`: 1 KiB `set`s, then `get`s of
// keys written beforehand, with N concurrent requests for S seconds each, through `getStore` configured by
// NETLIFY_BLOBS_CONTEXT (strong consistency, as the job layer needs).
//
// Usage: node bench/client.mjs <seconds> <max-ops> <concurrency>...
// Prints one JSON line per phase: {"op","workers","ops","errors","seconds","p50_ms","p99_ms"}.

import { getStore } from "@netlify/blobs";

const [seconds, maxOps, ...levels] = process.argv.slice(2).map(Number);
if (!(seconds > 0) || !(maxOps > 0) || levels.length === 0) {
  console.error("usage: node bench/client.mjs <seconds> <max-ops> <concurrency>...");
  process.exit(2);
}

/** Distinct keys per worker; operations cycle through them. */
const KEYS_PER_WORKER = 100;
const store = getStore({ name: "client-bench", consistency: "strong" });
const value = new Uint8Array(1024).fill(7);

const percentile = (sorted, q) =>
  sorted.length === 0 ? 0 : sorted[Math.round((sorted.length - 1) * q)];

async function phase(op, workers) {
  const started = performance.now();
  const end = started + seconds * 1000;
  const perWorker = Math.max(1, Math.floor(maxOps / workers));
  const latencies = [];
  let errors = 0;
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      for (let i = 0; i < perWorker && performance.now() < end; i++) {
        const key = `js/${w}/${i % KEYS_PER_WORKER}`;
        const t = performance.now();
        try {
          if (op === "set") {
            await store.set(key, value);
          } else if ((await store.get(key, { type: "arrayBuffer" })) === null) {
            throw new Error(`${key} is missing`);
          }
          latencies.push(performance.now() - t);
        } catch {
          errors++;
          if (errors >= 100) return;
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  console.log(
    JSON.stringify({
      op,
      workers,
      ops: latencies.length,
      errors,
      seconds: elapsed,
      p50_ms: percentile(latencies, 0.5),
      p99_ms: percentile(latencies, 0.99),
    }),
  );
}

/** Writes every key the get phase reads, untimed, however far the set phase got. */
async function prefill(workers) {
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      for (let i = 0; i < KEYS_PER_WORKER; i++) {
        await store.set(`js/${w}/${i}`, value);
      }
    }),
  );
}

for (const workers of levels) {
  await phase("set", workers);
  await prefill(workers);
  await phase("get", workers);
}

// Oversized PUTs against a blobs-emulator started with a small --max-blob-size: plain `fetch`
// and the official client must both receive the server's 413, never a reset connection.
// Prints one JSON line for the Rust test (emulator/tests/refusals.rs) to check.
//
// BASE: the server's URL; TOKEN: its token; SITE: a site ID; PUTS: how many plain PUTs;
// SIZE: the body size in bytes. NODE_ENV must not be "test", so that a retry by the official
// client would wait its real 5 s.

import { getStore } from "@netlify/blobs";

const { BASE: base, TOKEN: token, SITE: site } = process.env;
const puts = Number(process.env.PUTS);
const size = Number(process.env.SIZE);
const body = new Uint8Array(size);

// Plain fetch: every PUT gets a status (or the reason it got none).
const statuses = {};
for (let i = 0; i < puts; i++) {
  let outcome;
  try {
    const res = await fetch(`${base}/${site}/site:refusals/k${i}`, {
      method: "PUT",
      body,
      headers: { authorization: `Bearer ${token}` },
    });
    await res.text();
    outcome = String(res.status);
  } catch (error) {
    outcome = `error ${error.cause?.code ?? error.message}`;
  }
  statuses[outcome] = (statuses[outcome] ?? 0) + 1;
}

// The official client, counting the requests it sends.
let attempts = 0;
const countingFetch = (input, init) => {
  attempts += 1;
  return fetch(input, init);
};
const store = getStore({ name: "refusals", siteID: site, token, edgeURL: base, fetch: countingFetch });
const started = performance.now();
let clientError = null;
try {
  await store.set("too-big", body);
} catch (error) {
  clientError = String(error.message ?? error);
}
const clientMs = Math.round(performance.now() - started);

console.log(JSON.stringify({ statuses, attempts, clientMs, clientError }));

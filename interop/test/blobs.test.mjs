// Drives the official @netlify/blobs client through every operation against a running
// blobs-emulator. The server is found through NETLIFY_BLOBS_CONTEXT, exactly as a deployed
// function would find Netlify Blobs: an `edgeURL` in it selects edge mode, an `apiURL` alone
// selects API mode (signed URLs). Run: NETLIFY_BLOBS_CONTEXT=... npm test
//
// BLOBS_INTEROP_PAGE_SIZE must be the emulator's --list-page-size, so that the pagination
// cases create more keys (and stores) than fit in one page.

import { test } from "node:test";
import assert from "node:assert/strict";
import { getDeployStore, getStore, listStores } from "@netlify/blobs";

const rawContext = process.env.NETLIFY_BLOBS_CONTEXT;
assert.ok(rawContext, "NETLIFY_BLOBS_CONTEXT must be set");
const context = JSON.parse(Buffer.from(rawContext, "base64").toString("utf8"));
const mode = context.edgeURL ? "edge" : "api";
const baseURL = context.edgeURL ?? context.apiURL;
const pageSize = Number(process.env.BLOBS_INTEROP_PAGE_SIZE ?? "1000");
assert.ok(pageSize > 0 && pageSize <= 50, "use a small page size (<= 50) for this test");

// Every store of this run gets a unique prefix, so runs and modes never see each other.
const run = `${mode}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

// Records every request the client sends, to check that the mode really is what it claims.
const requests = [];
const recordingFetch = async (input, init = {}) => {
  const url = new URL(typeof input === "string" ? input : input.url);
  const headers = new Headers(init.headers ?? {});
  requests.push({ method: init.method ?? "GET", url, authorization: headers.get("authorization") });
  return fetch(input, init);
};

const store = (name) => getStore({ name: `${run}-${name}`, fetch: recordingFetch });

test(`${mode}: set, get as text, json and arrayBuffer`, async () => {
  const s = store("basic");
  const put = await s.set("greeting", "hello", { metadata: { user: "ü", n: 1 } });
  assert.equal(put.modified, true);
  assert.match(put.etag, /^".+"$/);
  assert.equal(await s.get("greeting"), "hello");
  assert.equal(await s.get("greeting", { type: "text" }), "hello");

  const json = await s.setJSON("doc", { a: [1, 2, { b: "c" }] });
  assert.equal(json.modified, true);
  assert.deepEqual(await s.get("doc", { type: "json" }), { a: [1, 2, { b: "c" }] });

  const bytes = new Uint8Array(256).map((_, i) => i);
  await s.set("bin", bytes.buffer);
  const back = new Uint8Array(await s.get("bin", { type: "arrayBuffer" }));
  assert.deepEqual(back, bytes);

  assert.equal(await s.get("missing"), null);
  assert.equal(await s.get("greeting", { consistency: "strong" }), "hello");
});

test(`${mode}: getWithMetadata, ETag revalidation and getMetadata`, async () => {
  const s = store("meta");
  const { etag } = await s.set("k", "v1", { metadata: { color: "blue" } });
  const full = await s.getWithMetadata("k");
  assert.equal(full.data, "v1");
  assert.equal(full.etag, etag);
  assert.deepEqual(full.metadata, { color: "blue" });

  // Unchanged data: the server answers 304 and the client returns data null.
  const fresh = await s.getWithMetadata("k", { etag });
  assert.equal(fresh.data, null);
  assert.equal(fresh.etag, etag);
  assert.deepEqual(fresh.metadata, { color: "blue" });

  const head = await s.getMetadata("k");
  assert.equal(head.etag, etag);
  assert.deepEqual(head.metadata, { color: "blue" });
  assert.equal(await s.getMetadata("missing"), null);
  assert.equal(await s.getWithMetadata("missing"), null);

  // Changed data: the old ETag no longer matches, so the new value comes back.
  const second = await s.set("k", "v2");
  assert.notEqual(second.etag, etag);
  const stale = await s.getWithMetadata("k", { etag, type: "text" });
  assert.equal(stale.data, "v2");
  assert.equal(stale.etag, second.etag);
  assert.deepEqual(stale.metadata, {});
});

test(`${mode}: delete`, async () => {
  const s = store("delete");
  await s.set("gone", "x");
  await s.delete("gone");
  assert.equal(await s.get("gone"), null);
  await s.delete("never-existed");
});

test(`${mode}: keys with spaces, unicode and long segments`, async () => {
  const s = store("keys");
  const keys = ["a b/ü", "p", "p/x", "k".repeat(600)];
  for (const key of keys) {
    await s.set(key, `value of ${key.length}`);
  }
  for (const key of keys) {
    assert.equal(await s.get(key), `value of ${key.length}`);
  }
  const { blobs } = await s.list();
  assert.deepEqual(blobs.map((b) => b.key).sort(), [...keys].sort());
});

test(`${mode}: list with prefix and directories`, async () => {
  const s = store("list");
  for (const key of ["dir/a", "dir/sub/c", "top", "dx", "d"]) {
    await s.set(key, "1");
  }
  const byPrefix = await s.list({ prefix: "dir/" });
  assert.deepEqual(byPrefix.blobs.map((b) => b.key), ["dir/a", "dir/sub/c"]);
  assert.deepEqual(byPrefix.directories, []);
  for (const blob of byPrefix.blobs) {
    assert.match(blob.etag, /^".+"$/);
  }

  const root = await s.list({ directories: true });
  assert.deepEqual(root.blobs.map((b) => b.key), ["d", "dx", "top"]);
  assert.deepEqual(root.directories, ["dir"]);

  const nested = await s.list({ prefix: "dir/", directories: true });
  assert.deepEqual(nested.blobs.map((b) => b.key), ["dir/a"]);
  assert.deepEqual(nested.directories, ["dir/sub"]);
});

test(`${mode}: list pagination`, async () => {
  const s = store("pages");
  const count = pageSize * 2 + 1;
  const keys = Array.from({ length: count }, (_, i) => `item/${String(i).padStart(4, "0")}`);
  await Promise.all(keys.map((key) => s.set(key, key)));

  const pages = [];
  for await (const page of s.list({ paginate: true })) {
    pages.push(page);
  }
  assert.equal(pages.length, 3);
  assert.ok(pages.every((page) => page.blobs.length <= pageSize));
  assert.deepEqual(pages.flatMap((page) => page.blobs.map((b) => b.key)), keys);

  const all = await s.list({ prefix: "item/" });
  assert.equal(all.blobs.length, count);
});

test(`${mode}: listStores, with pagination`, async () => {
  const names = Array.from({ length: pageSize + 1 }, (_, i) => `${run}-liststores-${i}`);
  await Promise.all(names.map((name) => getStore({ name, fetch: recordingFetch }).set("k", "v")));
  await getDeployStore({ fetch: recordingFetch }).set(`${run}-deploy-marker`, "v");

  const { stores } = await listStores({ fetch: recordingFetch });
  for (const name of names) {
    assert.ok(stores.includes(name), `listStores lacks ${name}`);
  }
  assert.ok(!stores.some((name) => name.startsWith("deploy:")));

  let pages = 0;
  const paged = [];
  for await (const page of listStores({ paginate: true, fetch: recordingFetch })) {
    pages += 1;
    paged.push(...page.stores);
  }
  assert.ok(pages >= 2, `expected several pages of stores, got ${pages}`);
  assert.deepEqual([...paged].sort(), [...stores].sort());
});

test(`${mode}: deploy-scoped stores`, async () => {
  const deploy = getDeployStore({ fetch: recordingFetch });
  await deploy.set(`${run}/dk`, "deploy value");
  assert.equal(await deploy.get(`${run}/dk`), "deploy value");

  const named = getDeployStore({ name: `${run}-named`, fetch: recordingFetch });
  await named.set("k", "named value");
  assert.equal(await named.get("k"), "named value");

  const other = getStore({ deployID: "dep123", fetch: recordingFetch });
  await other.set(`${run}/k`, "other deploy");
  assert.equal(await other.get(`${run}/k`), "other deploy");

  // Nothing leaks between deploy stores and site stores.
  assert.equal(await deploy.get(`${run}/k`), null);
  assert.equal(await store("named").get("k"), null);
  assert.equal(await other.get(`${run}/dk`), null);

  const seen = requests.filter((r) => r.url.pathname.includes("deploy:"));
  assert.ok(seen.length > 0);
  if (mode === "edge") {
    assert.ok(seen.some((r) => r.url.pathname.startsWith("/region:dev/")));
  } else {
    assert.ok(seen.some((r) => r.url.searchParams.get("region") === "auto"));
  }
});

test(`${mode}: onlyIfNew and onlyIfMatch`, async () => {
  const s = store("conditional");
  const first = await s.set("k", "one", { onlyIfNew: true });
  assert.equal(first.modified, true);
  const again = await s.setJSON("k", { two: 2 }, { onlyIfNew: true });
  assert.equal(again.modified, false);
  assert.equal(await s.get("k"), "one");

  const matched = await s.set("k", "three", { onlyIfMatch: first.etag });
  assert.equal(matched.modified, true);
  assert.notEqual(matched.etag, first.etag);
  const stale = await s.set("k", "four", { onlyIfMatch: first.etag });
  assert.equal(stale.modified, false);
  assert.equal(await s.get("k"), "three");
  const absent = await s.set("nope", "x", { onlyIfMatch: first.etag });
  assert.equal(absent.modified, false);
  assert.equal(await s.get("nope"), null);
});

test(`${mode}: deleteAll`, async () => {
  const s = store("delete-all");
  await Promise.all(["a", "b/c", "d"].map((key) => s.set(key, key)));
  const { deletedBlobs } = await s.deleteAll();
  assert.equal(deletedBlobs, 3);
  assert.deepEqual((await s.list()).blobs, []);
});

test(`${mode}: a wrong token fails`, async () => {
  const urls = mode === "edge" ? { edgeURL: baseURL } : { apiURL: baseURL };
  // siteID and token together make the client ignore the environment context.
  const bad = getStore({ name: `${run}-basic`, siteID: context.siteID, token: "wrong-token", ...urls });
  await assert.rejects(bad.get("greeting"));
  await assert.rejects(bad.set("greeting", "overwritten"));
  assert.equal(await store("basic").get("greeting"), "hello");
});

test(`${mode}: requests used the ${mode} form`, () => {
  assert.ok(requests.length > 0);
  const api = requests.filter((r) => r.url.pathname.startsWith("/api/v1/blobs/"));
  if (mode === "edge") {
    assert.equal(api.length, 0);
    assert.ok(requests.every((r) => r.authorization === `Bearer ${context.token}`));
  } else {
    assert.ok(api.length > 0);
    // Signed-URL requests carry no token; they must have succeeded on the signature alone.
    const signed = requests.filter((r) => r.url.searchParams.has("signature"));
    assert.ok(signed.length > 0);
    assert.ok(signed.every((r) => r.authorization === null));
  }
});

// The official local server (`BlobsServer` from @netlify/blobs) for `cargo xtask bench`,
// listening on 127.0.0.1 only, on a free port.
//
// Usage: node bench/server.mjs <directory> <token>
// Prints {"port": N} on the first line of stdout, then serves until stdin closes or a signal.

import http from "node:http";
import { BlobsServer } from "@netlify/blobs/server";

const [directory, token] = process.argv.slice(2);
if (!directory || !token) {
  console.error("usage: node bench/server.mjs <directory> <token>");
  process.exit(2);
}

// BlobsServer listens on every interface and takes no host option; a benchmark must stay on
// loopback, so `listen(port, callback)` gets the loopback host added.
const listen = http.Server.prototype.listen;
http.Server.prototype.listen = function (port, ...rest) {
  if (typeof port === "number" && typeof rest[0] === "function") {
    return listen.call(this, port, "127.0.0.1", ...rest);
  }
  return listen.call(this, port, ...rest);
};

const server = new BlobsServer({ directory, token, port: 0 });
const { port } = await server.start();
console.log(JSON.stringify({ port }));

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await server.stop();
  process.exit(0);
};
process.stdin.on("end", stop);
process.stdin.resume();
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

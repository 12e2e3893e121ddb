// Starts the official local server (`BlobsServer` from @netlify/blobs) for the side-by-side
// benchmark in crates/emulator/benches/compare.rs. Usage: node bench-server.mjs <dir> <token>
// Prints the port on the first line of stdout, then serves until stdin closes or a signal.

import { BlobsServer } from "@netlify/blobs/server";

const [directory, token] = process.argv.slice(2);
if (!directory || !token) {
  console.error("usage: node bench-server.mjs <directory> <token>");
  process.exit(2);
}
const server = new BlobsServer({ directory, token, port: 0 });
const { port } = await server.start();
console.log(port);

const stop = async () => {
  await server.stop();
  process.exit(0);
};
process.stdin.on("end", stop);
process.stdin.resume();
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

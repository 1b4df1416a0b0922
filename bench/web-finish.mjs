// The browser's evidence check in wasm, timed in V8 (Node; the engine Chromium runs wasm with):
// the sotto-web module's Channel.finish against an enclave, over a raw TCP connection with the
// relay's framing (big-endian u32 length, bytes). bench/web.sh runs it beside the same code
// compiled natively (crates/web/examples/finish_native.rs).
//
// node bench/web-finish.mjs ENCLAVE_ADDR POLICY_JSON [RUNS]; prints {"wasm_finish_ms": [...]}.

import { readFileSync } from "node:fs";
import { createConnection } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Channel, initSync } from "../web/pkg/sotto_web.js";

const [addr, policy, runsArg] = process.argv.slice(2);
if (!addr || !policy) throw new Error("usage: node bench/web-finish.mjs ENCLAVE_ADDR POLICY_JSON [RUNS]");
const runs = Number(runsArg ?? 30);
const pkg = join(dirname(fileURLToPath(import.meta.url)), "../web/pkg");
initSync({ module: readFileSync(join(pkg, "sotto_web_bg.wasm")) });

const [host, port] = [addr.slice(0, addr.lastIndexOf(":")), Number(addr.slice(addr.lastIndexOf(":") + 1))];

/** Sends one frame and resolves with the first frame back. */
function exchange(hello) {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host, port }, () => {
      const header = Buffer.alloc(4);
      header.writeUInt32BE(hello.length);
      socket.write(Buffer.concat([header, Buffer.from(hello)]));
    });
    let buf = Buffer.alloc(0);
    socket.on("data", (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        resolve(new Uint8Array(buf.subarray(4, 4 + buf.readUInt32BE(0))));
        socket.destroy();
      }
    });
    socket.on("error", reject);
    socket.on("close", () => reject(new Error("the enclave closed before answering")));
  });
}

const times = [];
for (let i = 0; i < runs; i++) {
  const channel = new Channel(policy);
  const response = await exchange(channel.hello());
  const t0 = performance.now();
  channel.finish(response, Date.now() / 1000);
  times.push(performance.now() - t0);
  channel.free();
}
console.log(JSON.stringify({ wasm_finish_ms: times }));

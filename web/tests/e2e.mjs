// End-to-end acceptance of the web client in real Chromium, against the real stack: a `sotto
// enclave` (simulated platform, a real GGUF model: scripts/test-web passes the tiny generated
// one; `--write-release` writes its release statement) and a `sotto server` serving web/dist
// and, with `--dev-release`, a development release log with two local witnesses at /log/, as
// `sotto up` does, with a TCP tap between them standing for a hostile server that can alter
// what the enclave sends (and counts what reaches it). A Chrome DevTools virtual authenticator
// (CTAP2.1, resident keys, user verification, PRF) plays the passkey.
//
// Checks: sign-up shows the recovery code once; a prompt streams an answer from the verified
// enclave and is saved encrypted; Markdown is rendered sanitized (no image loads, no script
// links) with a working copy button; stop and regenerate; rename, folders, search, delete with
// confirmation; theme switch and a phone-sized layout; after a reload, and again after the
// site's cookies, storage and IndexedDB are wiped, passkey sign-in decrypts everything; with
// the evidence tampered the page refuses to send and says why; a recovery code on a fresh
// browser registers that browser's own passkey, which then unlocks the history and manages
// passkeys; a message altered in the server's database makes the page refuse the history; a new
// recovery code replaces the old one; the passkey copied into an authenticator without PRF
// signs in and the recovery code unlocks; deleting the account leaves no row of it; a passkey
// without PRF is refused plainly; canaries typed in the page reach neither a request body, a
// WebSocket frame, nor any file or trace-level output of the server and the enclave; nothing is
// requested from any other origin. Before sending, the page checks the release log and shows
// the release and its witnesses; it refuses, with only the handshake hello having reached the
// enclave and no prompt byte sent: a server whose log lists another measurement; a bundle
// built with another stack's trust.json (SOTTO_WEB_TRUST) talking to this stack; a log that
// shows this browser another tree of the size it saw (split view) or a smaller one (rollback).
// Against a server started with --require-tokens, the page fetches a batch of anonymous relay
// tokens with its session and spends one per connection, directly and then through a `sotto
// hop` set in the account dialog (a malformed hop address is refused there).
// Screenshots go to artifacts/web/.
//
// Env: SOTTO_BIN (default $CARGO_TARGET_DIR/debug/sotto), SOTTO_MODEL (required: a GGUF),
// SOTTO_STRICT_DIST (a bundle built with SOTTO_WEB_ALLOW_SIMULATED=0: then also checks that it
// refuses the simulated enclave), CHROMIUM (default /usr/bin/chromium).

import { execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../..");
const dist = join(repo, "web/dist");
const bin =
  process.env.SOTTO_BIN ??
  join(process.env.CARGO_TARGET_DIR ?? join(repo, "target"), "debug/sotto");
const model = process.env.SOTTO_MODEL;
if (!model)
  throw new Error("set SOTTO_MODEL to a GGUF file (scripts/test-web writes the tiny test model)");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
/** A bundle built with SOTTO_WEB_ALLOW_SIMULATED=0, as a deployment ships it (optional). */
const strictDist = process.env.SOTTO_STRICT_DIST;
const artifacts = join(repo, "artifacts/web");
/** The client's hybrid Noise NX hello: its ephemeral X25519 key and, encrypted, the fresh 32-byte
 *  nonce the enclave's evidence must commit to and an ML-KEM-768 encapsulation key. */
const HELLO_BYTES = 1264;
mkdirSync(artifacts, { recursive: true });
for (const f of readdirSync(artifacts)) if (f.startsWith("failure-")) rmSync(join(artifacts, f));
const work = mkdtempSync(join(tmpdir(), "sotto-e2e-"));
const children = [];
/** Everything the enclave and server processes printed (stdout and stderr), by process. */
const outputs = [];
const contexts = [];
const began = Date.now();
const step = (what) => console.log(`[${((Date.now() - began) / 1000).toFixed(1)} s] ${what}`);
const shot = (page, name) => page.screenshot({ path: join(artifacts, name) });

function files(dir) {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

/** The server's bundle digest: sha256 of the sha256sum manifest of sorted relative paths. */
function bundleDigest(dir) {
  const manifest = files(dir)
    .map((p) => relative(dir, p))
    .sort()
    .map(
      (rel) =>
        `${createHash("sha256")
          .update(readFileSync(join(dir, rel)))
          .digest("hex")}  ${rel}\n`,
    )
    .join("");
  return createHash("sha256").update(manifest).digest("hex");
}

/** Starts a process and resolves with the first stdout match of `pattern`. */
function start(args, pattern, timeoutMs) {
  // At trace level, so the canary check below covers everything either process could log.
  const child = spawn(bin, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, SOTTO_LOG: "trace" },
  });
  children.push(child);
  let log = "";
  const output = { name: args[0], text: "" };
  outputs.push(output);
  child.stdout.on("data", (d) => (output.text += d));
  child.stderr.on("data", (d) => (output.text += d));
  return new Promise((res, rej) => {
    const timer = setTimeout(
      () => rej(new Error(`${args[0]} did not start in ${timeoutMs} ms:\n${log}`)),
      timeoutMs,
    );
    const onData = (d) => {
      log += d;
      const m = log.match(pattern);
      if (m) {
        clearTimeout(timer);
        res(m[1]);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", (d) => (log += d));
    child.on("exit", (code) => rej(new Error(`${args[0]} exited with ${code}:\n${log}`)));
  });
}

const serverPattern = /server listening on http:\/\/127\.0\.0\.1:(\d+)/;

/** Starts `sotto server` on a loopback port in front of `enclaveAddr`, serving the web client
 *  in `webDir`, with `flags` (where it keeps its data, collateral and log); resolves with its
 *  port and the origin pages load it from. */
async function startServer(enclaveAddr, webDir, flags) {
  const port = await start(
    ["server", "--enclave", enclaveAddr, "--web-dir", webDir, ...flags, "--listen", "127.0.0.1:0"],
    serverPattern,
    60_000,
  );
  return { port, origin: `http://localhost:${port}` };
}

/** A TCP tap in front of the enclave, where a hostile server sits: with `tamper.on`, it flips
 *  one byte in the middle of the enclave's first frame (the handshake answer carrying the
 *  evidence) on each new connection; with `tamper.delayMs`, it holds each frame back that long
 *  (a slow network, so a test can stop an answer mid-stream). Frames are a big-endian u32
 *  length and the bytes. `conns` lists, per connection, the sizes of the frames that went to
 *  the enclave. */
function tap(enclaveAddr) {
  const [host, port] = [
    enclaveAddr.slice(0, enclaveAddr.lastIndexOf(":")),
    Number(enclaveAddr.slice(enclaveAddr.lastIndexOf(":") + 1)),
  ];
  const tamper = { on: false, flipped: 0, delayMs: 0 };
  const conns = [];
  const server = createServer((client) => {
    const upstream = createConnection({ host, port });
    const flip = tamper.on;
    let buf = Buffer.alloc(0);
    let frames = 0;
    let queue = Promise.resolve();
    const up = [];
    conns.push(up);
    let ubuf = Buffer.alloc(0);
    client.on("data", (chunk) => {
      upstream.write(chunk);
      ubuf = Buffer.concat([ubuf, chunk]);
      while (ubuf.length >= 4 && ubuf.length >= 4 + ubuf.readUInt32BE(0)) {
        up.push(ubuf.readUInt32BE(0));
        ubuf = ubuf.subarray(4 + ubuf.readUInt32BE(0));
      }
    });
    client.on("end", () => upstream.end());
    upstream.on("data", (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const len = buf.readUInt32BE(0);
        const frame = Buffer.from(buf.subarray(0, 4 + len));
        buf = buf.subarray(4 + len);
        if (flip && frames === 0) {
          frame[4 + (len >> 1)] ^= 0x01;
          tamper.flipped++;
        }
        frames++;
        const delay = tamper.delayMs;
        if (delay)
          queue = queue
            .then(() => new Promise((r) => setTimeout(r, delay)))
            .then(() => client.writable && client.write(frame));
        else queue = queue.then(() => client.writable && client.write(frame));
      }
    });
    upstream.on("end", () => (queue = queue.then(() => client.end())));
    for (const s of [client, upstream]) s.on("error", () => (client.destroy(), upstream.destroy()));
  });
  server.unref();
  return new Promise((res) =>
    server.listen(0, "127.0.0.1", () =>
      res({ addr: `127.0.0.1:${server.address().port}`, tamper, server, conns }),
    ),
  );
}

const chromeArgs = [
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** A fresh browser profile with its own virtual passkey authenticator. */
async function browser(name, origin, { prf = true } = {}) {
  const context = await chromium.launchPersistentContext(join(work, `profile-${name}`), {
    executablePath: chromiumPath,
    headless: true,
    args: chromeArgs,
    viewport: { width: 1280, height: 800 },
  });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin });
  contexts.push(context);
  const page = context.pages()[0] ?? (await context.newPage());
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      ctap2Version: "ctap2_1",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      hasPrf: prf,
      automaticPresenceSimulation: true,
    },
  });
  return { context, page, cdp, authenticatorId };
}

/** A fresh browser (see `browser`) that has loaded `origin`'s client, recording what it sends
 *  into `sent` and the URLs it asks for into `urls`. */
async function opened(name, origin, sent, urls, options) {
  const b = await browser(name, origin, options);
  record(b.page, sent, urls);
  await b.page.goto(`${origin}/`);
  await b.page.waitForSelector("body[data-ready=true]");
  return b;
}

/** The URLs of `urls` that are neither `server` (see `startServer`) nor its WebSocket. */
const elsewhere = (urls, server) =>
  urls.filter(
    (u) => !u.startsWith(server.origin) && !u.startsWith(`ws://localhost:${server.port}/`),
  );

/** Everything a page sends (request bodies and WebSocket frames) and every URL it asks for. */
function record(page, sent, urls) {
  page.on("request", (r) => {
    urls.push(r.url());
    const body = r.postDataBuffer();
    if (body) sent.push({ what: `${r.method()} ${new URL(r.url()).pathname}`, bytes: body });
  });
  page.on("websocket", (ws) =>
    ws.on("framesent", (f) => sent.push({ what: "ws frame", bytes: Buffer.from(f.payload) })),
  );
}

/** How many accounts' rollback ledgers the page's IndexedDB holds. */
const ledgerCount = (page) =>
  page.evaluate(
    () =>
      new Promise((res, rej) => {
        const r = indexedDB.open("sotto");
        r.onsuccess = () => {
          const q = r.result.transaction("ledgers").objectStore("ledgers").count();
          q.onsuccess = () => res(q.result);
          q.onerror = () => rej(q.error);
        };
        r.onerror = () => rej(r.error);
      }),
  );
const texts = (page, selector) => page.$$eval(selector, (els) => els.map((e) => e.textContent));
const statusText = (page) => page.textContent("#status");

/** The titles in the page's conversation list, once it lists any. */
async function titles(page) {
  await page.waitForSelector("#conversations button.conv", { timeout: 30_000 });
  return texts(page, "#conversations button.conv");
}

/** Sends a prompt and waits for the whole answer to be saved; returns its text. */
async function chat(page, prompt) {
  const before = (await page.$$(".msg.assistant[data-done=true]")).length;
  await page.fill("#prompt", prompt);
  await page.click("#send");
  await page.waitForFunction(
    (n) => document.querySelectorAll(".msg.assistant[data-done=true]").length > n,
    before,
    { timeout: 240_000 },
  );
  await page.waitForFunction(() =>
    /saved encrypted/.test(document.getElementById("status").textContent),
  );
  return page.textContent(".msg.assistant[data-done=true] >> nth=-1");
}

async function signIn(page) {
  await page.click("#signin");
  await page.waitForSelector("#app:not([hidden])", { timeout: 30_000 });
}

async function signUp(page) {
  await page.click("#signup");
  await page.waitForSelector("#recovery-show:not([hidden])", { timeout: 30_000 });
  await page.check("#saved-check");
  await page.click("#saved");
  await page.waitForSelector("#app:not([hidden])");
}

/** Runs a command to its end without blocking this process (the taps and the children's pipes
 *  keep being served meanwhile). */
function run(cmd, args, env) {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, {
      stdio: ["ignore", "inherit", "inherit"],
      env: { ...process.env, ...env },
    });
    child.on("error", rej);
    child.on("exit", (code) =>
      code === 0 ? res() : rej(new Error(`${cmd} ${args.join(" ")} exited with ${code}`)),
    );
  });
}

const escapeRe = (t) => t.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

/** The RFC 6962 Merkle tree hash of `entries` (Buffers). */
function merkleRoot(entries) {
  const h = (...parts) => createHash("sha256").update(Buffer.concat(parts)).digest();
  const mth = (leaves) => {
    if (leaves.length === 1) return h(Buffer.from([0]), leaves[0]);
    let k = 1;
    while (k * 2 < leaves.length) k *= 2;
    return h(Buffer.from([1]), mth(leaves.slice(0, k)), mth(leaves.slice(k)));
  };
  return entries.length === 0 ? h() : mth(entries);
}

/** The release log states the page's IndexedDB holds: [origin, state JSON] pairs. */
const logStates = (page) =>
  page.evaluate(
    () =>
      new Promise((res, rej) => {
        const r = indexedDB.open("sotto");
        r.onsuccess = () => {
          const s = r.result.transaction("logs").objectStore("logs");
          const keys = s.getAllKeys();
          const values = s.getAll();
          values.onsuccess = () => {
            r.result.close();
            res(keys.result.map((k, i) => [k, values.result[i]]));
          };
          values.onerror = () => rej(values.error);
        };
        r.onerror = () => rej(r.error);
      }),
  );

/** Writes a release log state into the page's IndexedDB, as a hostile extension or a forged
 *  backup could. */
const putLogState = (page, origin, json) =>
  page.evaluate(
    ([o, j]) =>
      new Promise((res, rej) => {
        const r = indexedDB.open("sotto");
        r.onsuccess = () => {
          const t = r.result.transaction("logs", "readwrite");
          t.objectStore("logs").put(j, o);
          t.oncomplete = () => (r.result.close(), res());
          t.onerror = () => rej(t.error);
        };
        r.onerror = () => rej(r.error);
      }),
    [origin, json],
  );

/** Sends `prompt` and expects the page to refuse the enclave with a status matching
 *  `pattern`: the prompt stays in the box, nothing joins the conversation, and the page sent,
 *  and the enclave (behind `via`) received, nothing but the handshake hello (HELLO_BYTES). */
async function expectRefusal(page, sent, via, prompt, pattern) {
  const framesBefore = sent.filter((s) => s.what === "ws frame").length;
  const connsBefore = via.conns.length;
  const msgsBefore = await page.locator(".msg").count();
  await page.fill("#prompt", prompt);
  await page.click("#send");
  await page.waitForSelector("#status.error", { timeout: 60_000 });
  const text = await statusText(page);
  assert.match(text, pattern, text);
  assert.match(await page.textContent("#verified-state"), /^Refused: .*Nothing was sent\.$/);
  assert.equal(await page.inputValue("#prompt"), prompt, "the prompt stays in the box");
  assert.equal(
    await page.locator(".msg").count(),
    msgsBefore,
    "nothing was added to the conversation",
  );
  const frames = sent.filter((s) => s.what === "ws frame").slice(framesBefore);
  assert.deepEqual(
    frames.map((f) => f.bytes.length),
    [HELLO_BYTES],
    "the page sent the handshake hello alone",
  );
  assert.deepEqual(
    via.conns.slice(connsBefore),
    [[HELLO_BYTES]],
    "the enclave received the hello and nothing else",
  );
  return text;
}

async function main() {
  const t0 = Date.now();
  const enclaveDir = join(work, "enclave");
  const serverDir = join(work, "server");
  const releaseFile = join(work, "release.json");
  const enclave = await start(
    [
      "enclave",
      "--model",
      model,
      "--data-dir",
      enclaveDir,
      "--listen",
      "127.0.0.1:0",
      // One thread: with the test model's 16 blocks (scripts/test-web) an answer then spreads
      // over several of the enclave's 50 ms ticks, so that Stop can cut it.
      "--threads",
      "1",
      "--write-release",
      releaseFile,
    ],
    /enclave listening on (\S+)/,
    300_000,
  );
  const hostile = await tap(enclave);
  /** A server's collateral dir: the enclave's files (the simulated root), to which the
   *  server's --dev-release log adds its trust.json. */
  const collateralFor = (dataDir) => {
    const dir = join(dataDir, "collateral");
    mkdirSync(dir, { recursive: true });
    for (const f of readdirSync(join(enclaveDir, "collateral")))
      copyFileSync(join(enclaveDir, "collateral", f), join(dir, f));
    return dir;
  };
  const trustOf = (dataDir) => JSON.parse(readFileSync(join(dataDir, "trust.json"), "utf8"));
  /** The flags of a server that serves this stack's log and collateral (its trust.json too). */
  const thisStacksLog = [
    "--collateral-dir",
    join(serverDir, "collateral"),
    "--log-dir",
    join(serverDir, "log", "public"),
  ];
  // Three browsers sign up, in and recover a dozen times within seconds, all from 127.0.0.1:
  // more than the default per-address burst allows.
  const server = await startServer(hostile.addr, dist, [
    "--data-dir",
    serverDir,
    "--collateral-dir",
    collateralFor(serverDir),
    "--dev-release",
    releaseFile,
    "--auth-burst",
    "100",
  ]);
  const thisLog = trustOf(serverDir).log.origin;
  assert.ok(thisLog.startsWith("dev.sotto.invalid/"), `a development log: ${thisLog}`);
  const { origin } = server;
  const url = `${origin}/`;
  console.log(`stack up in ${Date.now() - t0} ms at ${url}`);

  const served = (await (await fetch(`${url}.well-known/sotto-bundle.sha256`)).text()).trim();
  assert.equal(
    served,
    bundleDigest(dist),
    "the served bundle digest is the one computed from web/dist",
  );
  const index = await fetch(url);
  assert.match(
    index.headers.get("content-security-policy") ?? "",
    /script-src 'self' 'wasm-unsafe-eval'/,
  );

  const tag = randomBytes(6).toString("hex");
  const canaries = [`CANARYPROMPT${tag}`, `CANARYTITLE${tag}`, `CANARYFOLDER${tag}`];
  const sent = [];
  const urls = [];
  const consoleErrors = [];

  step("Device A: sign up");
  const a = await browser("a", origin);
  record(a.page, sent, urls);
  a.page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
  a.page.on("pageerror", (e) => consoleErrors.push(String(e)));
  await a.page.goto(url);
  await a.page.waitForSelector("body[data-ready=true]");
  await a.page.fill("#display-name", "E2E");
  await a.page.click("#signup");
  await a.page.waitForSelector("#recovery-show:not([hidden])", { timeout: 30_000 });
  const code = (await a.page.textContent("#recovery-code")).trim();
  assert.ok(code.length > 20, `a recovery code is shown (${code.length} chars)`);
  assert.equal(await a.page.isDisabled("#saved"), true, "Continue waits for 'I saved it'");
  await shot(a.page, "1-signup-recovery-code.png");
  await a.page.check("#saved-check");
  await a.page.click("#saved");
  await a.page.waitForSelector("#app:not([hidden])");
  assert.equal(await a.page.textContent("#recovery-code"), "", "the code is gone once confirmed");

  step("A streamed answer, to a prompt carrying a canary and hostile Markdown");
  const code1 = "print('hello from a code block')";
  const prompt = [
    `Say hello to ${canaries[0]} in **one** short sentence.`,
    "",
    "```python",
    code1,
    "```",
    "",
    '<img src="https://tracker.invalid/pixel.png"> ![pixel](https://tracker.invalid/md.png) [click](javascript:alert(1)) <script>alert(2)</script>',
  ].join("\n");
  await a.page.evaluate(() => {
    window.__updates = 0;
    new MutationObserver(() => window.__updates++).observe(document.getElementById("messages"), {
      childList: true,
      characterData: true,
      subtree: true,
    });
  });
  const sentAt = Date.now();
  const answer = await chat(a.page, prompt);
  const answerMs = Date.now() - sentAt;
  assert.ok(answer.trim().length > 0, "the enclave answered");
  const updates = await a.page.evaluate(() => window.__updates);
  assert.ok(updates > 3, `the answer streamed in pieces (${updates} DOM updates)`);
  assert.equal(await a.page.isVisible("#simulated-banner"), true, "the SIMULATED banner is up");
  const finishMs = Number(await a.page.getAttribute("#verified-list", "data-finish-ms"));
  const verified = await a.page.textContent("#verified-list");
  assert.match(verified, /Measurement[0-9a-f]{96}/);
  assert.match(verified, /Checked at/);
  assert.match(
    verified,
    /TCBbootloader \d+, tee \d+, snp \d+, microcode \d+; \d+ checks passed/,
    "the TCB is shown readably",
  );
  assert.match(verified, /Model\S+ sha256 [0-9a-f]{64}/, "the model digest is shown");
  assert.match(
    await a.page.textContent("#verified-state"),
    /Checked in this page before anything was sent/,
  );
  const logMs = Number(await a.page.getAttribute("#verified-list", "data-log-ms"));
  const log = escapeRe(thisLog);
  assert.match(
    verified,
    /Releasesotto \S+, commit [0-9a-f]{40}Log entry#0, statement sha256 [0-9a-f]{64}/,
    "the logged release is shown",
  );
  assert.match(
    verified,
    new RegExp(`Signed byrelease-0\\.${log}, release-1\\.${log}Log`),
    "its signers are shown",
  );
  assert.match(
    verified,
    new RegExp(`Log${log}, 1 entry, first checked by this browser \\(DEVELOPMENT log`),
    "the log is shown",
  );
  for (const w of [0, 1])
    assert.match(
      verified,
      new RegExp(`Witnesswitness-${w}\\.${log} cosigned \\d+ s ago`),
      `witness ${w} is shown`,
    );
  assert.ok(
    urls.includes(`${origin}/log/checkpoint`) &&
      urls.includes(`${origin}/log/tile/entries/000.p/1`),
    "the page fetched the log's checkpoint and entries",
  );
  await shot(a.page, "2-chat-streamed-answer.png");
  // Tall enough for the whole panel: the evidence, the release, the log and both witnesses.
  await a.page.setViewportSize({ width: 1280, height: 1500 });
  await a.page.locator("#verified").screenshot({ path: join(artifacts, "3-verified-panel.png") });
  await a.page.setViewportSize({ width: 1280, height: 800 });

  step("Markdown: rendered, sanitized, and the code block's copy button works");
  const user = ".msg.user >> nth=0";
  assert.equal(await a.page.textContent(`${user} >> strong`), "one");
  assert.equal(
    await a.page.textContent(`${user} >> pre`),
    code1,
    "the fenced code block is a code block",
  );
  assert.equal(
    await a.page.locator(".msg img, .msg script").count(),
    0,
    "no image or script element from Markdown or HTML",
  );
  assert.equal(await a.page.locator(".msg a").count(), 0, "a javascript: link is not a link");
  assert.match(
    await a.page.textContent(user),
    /<img src=.*<script>alert\(2\)<\/script>/,
    "raw HTML is shown as typed",
  );
  assert.match(
    await a.page.textContent(user),
    /\[image: pixel\]/,
    "a Markdown image is named, not loaded",
  );
  await a.page.click(`${user} >> button.copy`);
  await a.page.waitForFunction(
    () => document.querySelector(".msg.user button.copy").textContent === "Copied",
  );
  assert.equal(
    await a.page.evaluate(() => navigator.clipboard.readText()),
    code1,
    "Copy put the code on the clipboard",
  );

  step("Stop mid-answer (Esc) in a second conversation, then regenerate the stopped answer");
  const first = await a.page.textContent("#conv-title");
  await a.page.click("#new-chat");
  hostile.tamper.delayMs = 100;
  await a.page.fill("#prompt", "Tell me more.");
  await a.page.click("#send");
  await a.page.waitForFunction(
    () =>
      (document.querySelector("#messages .msg.assistant:last-child")?.textContent ?? "").length > 0,
    null,
    { timeout: 240_000 },
  );
  await a.page.keyboard.press("Escape");
  hostile.tamper.delayMs = 0;
  await a.page.waitForSelector(".msg.assistant.stopped[data-done=true]");
  await a.page.waitForFunction(() => /Stopped/.test(document.getElementById("status").textContent));
  const stopped = await a.page.textContent(".msg.assistant.stopped");
  assert.ok(
    stopped.length < answer.length,
    `the stopped answer is shorter (${stopped.length} < ${answer.length})`,
  );
  await a.page.waitForSelector("#regenerate:not([disabled])");
  await a.page.click("#regenerate");
  await a.page.waitForFunction(
    () =>
      /saved encrypted/.test(document.getElementById("status").textContent) &&
      !document.querySelector(".msg.stopped"),
    null,
    { timeout: 240_000 },
  );
  const classes = await a.page.$$eval(".msg", (els) => els.map((e) => e.className));
  // The tiny test model never ends an answer itself: the enclave says it stopped at the length
  // limit, and the answer is saved and shown as incomplete (a real model's may end first).
  const cut = /length limit/.test(await a.page.textContent("#status"));
  assert.deepEqual(
    classes,
    ["msg user", cut ? "msg assistant incomplete" : "msg assistant"],
    "the regenerated answer replaced the stopped one",
  );
  const expected = await texts(a.page, ".msg");
  assert.ok(expected[1].length > stopped.length, "the regenerated answer ran on past the stop");
  // Each new connection checks the log again, from the tree this browser stored.
  assert.match(
    await a.page.textContent("#verified-list"),
    /1 entry, consistent with the 1 this browser saw before/,
  );
  const logMsAgain = Number(await a.page.getAttribute("#verified-list", "data-log-ms"));

  step("Rename into a folder; search; delete with confirmation");
  const renamed = `Renamed ${canaries[1]}`;
  const folderName = `Work ${canaries[2]}`;
  await a.page.click("#edit-conv");
  await a.page.fill("#edit-title", renamed);
  await a.page.fill("#edit-folder", folderName);
  await a.page.click("#edit-save");
  await a.page.waitForFunction(
    (t) => document.getElementById("conv-title").textContent === t,
    renamed,
  );
  assert.equal(
    await a.page.textContent('#conversations section:not([data-folder=""]) h3'),
    folderName,
  );
  assert.deepEqual(
    (await texts(a.page, "#conversations button.conv")).sort(),
    [first, renamed].sort(),
  );
  await a.page.fill("#search", "renamed");
  assert.deepEqual(
    await texts(a.page, "#conversations button.conv"),
    [renamed],
    "search filters by title",
  );
  await a.page.fill("#search", "work");
  assert.deepEqual(
    await texts(a.page, "#conversations button.conv"),
    [renamed],
    "search matches folders",
  );
  await a.page.fill("#search", "");
  await a.page.click(`#conversations button.conv >> text=${JSON.stringify(first)}`);
  await a.page.click("#delete-conv");
  await a.page.waitForSelector("#delete-dialog[open]");
  await a.page.click("#delete-dialog button[value='']");
  assert.equal(
    await a.page.locator("#conversations button.conv").count(),
    2,
    "cancel keeps the conversation",
  );
  await a.page.click("#delete-conv");
  await a.page.click("#delete-confirm");
  await a.page.waitForFunction(() => /deleted/.test(document.getElementById("status").textContent));
  assert.deepEqual(
    await texts(a.page, "#conversations button.conv"),
    [renamed],
    "the confirmed delete removed it",
  );

  step("Theme switch and the phone layout");
  await a.page.click(`#conversations button.conv`);
  const bg = () => a.page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  await a.page.click("#theme");
  assert.equal(await a.page.getAttribute("html", "data-theme"), "light");
  const light = await bg();
  await a.page.click("#theme");
  assert.equal(await a.page.getAttribute("html", "data-theme"), "dark");
  assert.notEqual(await bg(), light, "dark and light differ");
  await shot(a.page, "4-dark-theme.png");
  await a.page.setViewportSize({ width: 390, height: 844 });
  assert.equal(await a.page.isVisible("#sidebar"), false, "on a phone the list folds away");
  assert.ok(
    await a.page.evaluate(() => document.documentElement.scrollWidth <= 390),
    "nothing overflows sideways on a phone",
  );
  await shot(a.page, "5-phone-chat.png");
  await a.page.click("#toggle-sidebar");
  assert.equal(await a.page.isVisible("#sidebar"), true);
  await shot(a.page, "6-phone-conversations.png");
  await a.page.click("#sidebar .close-overlay");
  await a.page.setViewportSize({ width: 1280, height: 800 });
  await a.page.click("#theme");

  step("Reload: the vault locks; the passkey unlocks it again");
  const reopen = async (page, why) => {
    assert.deepEqual(await titles(page), [renamed], `${why}: the list decrypts`);
    await page.click("#conversations button.conv");
    assert.deepEqual(
      await texts(page, ".msg"),
      expected,
      `${why}: the conversation decrypts whole`,
    );
    assert.deepEqual(
      await page.$$eval(".msg", (els) => els.map((e) => e.className)),
      classes,
      `${why}: an answer cut short still says so`,
    );
  };
  await a.page.reload();
  await a.page.waitForSelector("body[data-ready=true]");
  assert.equal(await a.page.isVisible("#app"), false, "a reload locks the vault");
  await signIn(a.page);
  await reopen(a.page, "after a reload");
  assert.equal(await ledgerCount(a.page), 1, "the rollback ledger is kept in IndexedDB");

  step(
    "The release log shows A another tree of the size it saw (split view), then a smaller one (rollback): refused",
  );
  const states = await logStates(a.page);
  assert.deepEqual(
    states.map(([o]) => o),
    [thisLog],
    "the verified tree is stored in IndexedDB under the log's origin",
  );
  const storedJson = states[0][1];
  const storedState = JSON.parse(storedJson);
  assert.equal(storedState.size, 1);
  const entries = storedState.entries.map((e) => Buffer.from(e, "base64"));
  /** A self-consistent state (its entries hash to its root) for another tree. */
  const forge = (list) =>
    JSON.stringify({
      ...storedState,
      size: list.length,
      root: merkleRoot(list).toString("base64"),
      entries: list.map((e) => e.toString("base64")),
    });
  assert.equal(
    forge(entries),
    storedJson,
    "the forged states are built exactly as the wasm stores them",
  );
  const forgeries = [
    [
      "split view",
      forge([
        ...entries.slice(0, -1),
        Buffer.concat([entries.at(-1), Buffer.from("another entry\n")]),
      ]),
      /Refused the enclave, so nothing was sent: the release log cannot be trusted: split view: the log shows a tree of size 1 with another root than the one this client saw before/,
    ],
    [
      "rollback",
      forge([...entries, Buffer.from("a later entry\n")]),
      /Refused the enclave, so nothing was sent: the release log cannot be trusted: the log was rolled back: its tree has size 1, this client saw size 2 before/,
    ],
  ];
  for (const [name, forged, pattern] of forgeries) {
    await putLogState(a.page, thisLog, forged);
    await a.page.reload();
    await a.page.waitForSelector("body[data-ready=true]");
    await signIn(a.page);
    await expectRefusal(a.page, sent, hostile, `Not after a ${name} ${canaries[0]}`, pattern);
    if (name === "split view") await shot(a.page, "11-split-view-refused.png");
    assert.deepEqual(
      await logStates(a.page),
      [[thisLog, forged]],
      `the ${name} left the stored tree as it was`,
    );
  }
  await putLogState(a.page, thisLog, storedJson);

  // Like a new device with the same synced passkey: the same virtual authenticator, since
  // Chrome drops a credential's PRF secret when it is exported into another one.
  step("Wipe the site's cookies, storage and IndexedDB");
  await a.cdp.send("Storage.clearDataForOrigin", { origin, storageTypes: "all" });
  await a.context.clearCookies();
  await a.page.reload();
  await a.page.waitForSelector("body[data-ready=true]");
  assert.equal(
    await a.page.evaluate(() => indexedDB.databases().then((d) => d.length)),
    0,
    "IndexedDB is empty",
  );
  assert.equal((await a.context.cookies()).length, 0, "no cookies left");
  await signIn(a.page);
  await reopen(a.page, "after wiping the site's data");

  step("Tampered evidence: the page refuses to send and says why");
  hostile.tamper.on = true;
  await a.page.reload();
  await a.page.waitForSelector("body[data-ready=true]");
  await signIn(a.page);
  const framesBefore = sent.filter((s) => s.what === "ws frame").length;
  await a.page.fill("#prompt", "This must not be sent");
  await a.page.click("#send");
  await a.page.waitForSelector("#status.error", { timeout: 30_000 });
  const refusal = await statusText(a.page);
  assert.match(
    refusal,
    /Refused the enclave, so nothing was sent: .*(noise handshake failed|evidence)/,
    refusal,
  );
  assert.match(await a.page.textContent("#verified-state"), /^Refused: .*Nothing was sent\.$/);
  assert.equal(
    await a.page.inputValue("#prompt"),
    "This must not be sent",
    "the prompt stays in the box",
  );
  assert.equal(await a.page.locator(".msg").count(), 0, "nothing was added to the conversation");
  assert.equal(
    sent.filter((s) => s.what === "ws frame").length - framesBefore,
    1,
    "only the handshake's first message was sent",
  );
  assert.ok(hostile.tamper.flipped >= 1, "the tap altered the evidence");
  await shot(a.page, "7-tampered-evidence-refused.png");
  hostile.tamper.on = false;

  step("Device B: a fresh browser recovers with the code and registers its own passkey");
  const b = await browser("b", origin);
  record(b.page, sent, urls);
  b.page.on("pageerror", (e) => consoleErrors.push(String(e)));
  await b.page.goto(url);
  await b.page.waitForSelector("body[data-ready=true]");
  await b.page.fill("#recover-code", "not a valid code");
  await b.page.click("#recover");
  await b.page.waitForSelector("#status.error");
  await b.page.fill("#recover-code", code);
  await b.page.click("#recover");
  await reopen(b.page, "recovered on device B");
  await b.page.click("#signout");
  await b.page.waitForSelector("#welcome:not([hidden])");
  await signIn(b.page);
  await reopen(b.page, "B's own passkey after recovery");

  step("B renames the conversation; A sees it when its tab gets focus again");
  const byB = `Renamed on B ${tag}`;
  await b.page.click("#edit-conv");
  await b.page.fill("#edit-title", byB);
  await b.page.click("#edit-save");
  await b.page.waitForFunction((t) => document.getElementById("conv-title").textContent === t, byB);
  await a.page.evaluate(() => window.dispatchEvent(new Event("focus")));
  await a.page.waitForFunction(
    (t) =>
      [...document.querySelectorAll("#conversations button.conv")].some((b) => b.textContent === t),
    byB,
  );
  assert.equal(
    await a.page.textContent('#conversations section:not([data-folder=""]) h3'),
    folderName,
    "B's title edit kept A's folder",
  );
  await a.page.click("#signout");
  await a.page.waitForSelector("#welcome:not([hidden])");

  step("B manages passkeys: two listed; removing A's stops it from signing in");
  await b.page.click("#manage-passkeys");
  await b.page.waitForSelector("#passkeys-dialog[open] #passkey-list li");
  assert.equal(
    await b.page.locator("#passkey-list li").count(),
    2,
    "A's and B's passkeys are listed",
  );
  const listed = await texts(b.page, "#passkey-list li");
  assert.ok(
    !/signed in with this one/.test(listed[0]) && /signed in with this one/.test(listed[1]),
    `B's own passkey is marked: ${listed}`,
  );
  assert.match(listed[0], /^Chrome on Linux added /, "passkeys are named after the device");
  await shot(b.page, "10-account-dialog.png");
  await b.page.click("#passkey-list li >> nth=0 >> button.remove-passkey");
  await b.page.click("#passkey-list li >> nth=0 >> button.remove-passkey");
  await b.page.waitForFunction(() => document.querySelectorAll("#passkey-list li").length === 1);
  assert.equal(
    await b.page.isDisabled("#passkey-list li button.remove-passkey"),
    true,
    "the last passkey cannot be removed",
  );
  await b.page.click("#passkeys-dialog button[value='']");
  // From here on A's failed sign-in makes Chromium log the 401 as a console error.
  assert.deepEqual(consoleErrors, [], "no console errors");
  await a.page.click("#signin");
  await a.page.waitForSelector("#status.error", { timeout: 30_000 });
  assert.equal(await a.page.isVisible("#app"), false, "the removed passkey no longer signs in");

  step(
    "A hostile server alters a stored message: B refuses the whole history and says which record",
  );
  const db = join(serverDir, "accounts.sqlite");
  const sql = (q) =>
    execFileSync("sqlite3", ["-cmd", ".timeout 10000", db, q], { encoding: "utf8" }).trim();
  const [victim, original] = sql(
    "SELECT id, hex(ciphertext) FROM records WHERE id LIKE 'm.%' AND ciphertext IS NOT NULL ORDER BY seq DESC LIMIT 1",
  ).split("|");
  const mid = (original.length >> 1) & ~1;
  const flipped =
    original.slice(0, mid) +
    (parseInt(original.slice(mid, mid + 2), 16) ^ 1).toString(16).padStart(2, "0").toUpperCase() +
    original.slice(mid + 2);
  sql(`UPDATE records SET ciphertext = X'${flipped}' WHERE id = '${victim}'`);
  await b.page.reload();
  await b.page.waitForSelector("body[data-ready=true]");
  await b.page.click("#signin");
  await b.page.waitForSelector("#status.error", { timeout: 30_000 });
  const refused = await statusText(b.page);
  assert.ok(refused.includes(`refusing the history: record ${victim}`), refused);
  assert.equal(await b.page.isVisible("#app"), false, "nothing of a tampered history is shown");
  await shot(b.page, "8-tampered-history-refused.png");
  sql(`UPDATE records SET ciphertext = X'${original}' WHERE id = '${victim}'`);
  await signIn(b.page);
  assert.deepEqual(await titles(b.page), [byB], "the untampered history opens again");

  step("B makes a new recovery code: the old one stops working, the new one opens the history");
  await b.page.click("#manage-passkeys");
  await b.page.waitForSelector("#passkeys-dialog[open]");
  await b.page.click("#rotate-recovery");
  await b.page.waitForSelector("#recovery-show:not([hidden])", { timeout: 30_000 });
  const newCode = (await b.page.textContent("#recovery-code")).trim();
  assert.ok(newCode.length > 20 && newCode !== code, "a different code is shown");
  await b.page.check("#saved-check");
  await b.page.click("#saved");
  await b.page.waitForSelector("#app:not([hidden])");
  assert.equal(
    await b.page.textContent("#recovery-code"),
    "",
    "the new code is gone once confirmed",
  );
  await a.page.fill("#recover-code", code);
  await a.page.click("#recover");
  await a.page.waitForFunction(
    () => /does not belong to any account/.test(document.getElementById("status").textContent),
    null,
    { timeout: 30_000 },
  );
  await a.page.fill("#recover-code", newCode);
  await a.page.click("#recover");
  assert.deepEqual(await titles(a.page), [byB], "the new code unlocks the history");
  await a.page.click("#signout");
  await a.page.waitForSelector("#welcome:not([hidden])");

  // Chrome drops a credential's PRF secret when it is exported into another authenticator: the
  // same passkey then signs in but cannot unlock, like a synced passkey on a browser without PRF.
  step("B's passkey synced to a browser without PRF: signs in, and the recovery code unlocks");
  const [bCred] = (
    await b.cdp.send("WebAuthn.getCredentials", { authenticatorId: b.authenticatorId })
  ).credentials;
  const e = await browser("e", origin, { prf: false });
  record(e.page, sent, urls);
  await e.cdp.send("WebAuthn.addCredential", {
    authenticatorId: e.authenticatorId,
    credential: bCred,
  });
  await e.page.goto(url);
  await e.page.waitForSelector("body[data-ready=true]");
  await e.page.click("#signin");
  await e.page.waitForSelector("#unlock:not([hidden])", { timeout: 30_000 });
  assert.match(await e.page.textContent("#unlock-why"), /does not support the PRF extension/);
  await e.page.fill("#unlock-code", code);
  await e.page.click("#unlock-form button");
  await e.page.waitForSelector("#status.error");
  assert.equal(await e.page.isVisible("#app"), false, "the replaced recovery code does not unlock");
  await e.page.fill("#unlock-code", newCode);
  await e.page.click("#unlock-form button");
  assert.deepEqual(await titles(e.page), [byB], "unlocked with the recovery code");

  step("B deletes the account: nothing of it is left on the server");
  await b.page.click("#manage-passkeys");
  await b.page.waitForSelector("#passkeys-dialog[open]");
  assert.equal(
    await b.page.isDisabled("#delete-account"),
    true,
    "deleting waits for 'I understand'",
  );
  await b.page.check("#delete-account-check");
  await b.page.click("#delete-account");
  await b.page.waitForSelector("#welcome:not([hidden])", { timeout: 30_000 });
  assert.match(await statusText(b.page), /deleted/);
  assert.equal(
    sql(
      "SELECT (SELECT count(*) FROM accounts) + (SELECT count(*) FROM credentials) + (SELECT count(*) FROM records) + (SELECT count(*) FROM sessions)",
    ),
    "0",
  );
  await b.page.click("#signin");
  await b.page.waitForSelector("#status.error", { timeout: 30_000 });
  assert.equal(
    await b.page.isVisible("#app"),
    false,
    "the deleted account's passkey signs in to nothing",
  );
  for (const who of [a, b]) {
    assert.equal(
      await ledgerCount(who.page),
      who === b ? 0 : 1,
      "the deleting browser forgot its ledger",
    );
  }

  step("Device C: an authenticator without PRF is refused plainly, before any account exists");
  const c = await opened("c", origin, sent, urls, { prf: false });
  await c.page.click("#signup");
  await c.page.waitForSelector("#status.error", { timeout: 30_000 });
  assert.match(await c.page.textContent("#status"), /does not support the PRF extension/);
  const registerFinishes = sent.filter((s) => s.what === "POST /v1/account/register/finish").length;
  assert.equal(registerFinishes, 1, "only device A finished a sign-up");

  step("A server whose development log lists another measurement: the page refuses the release");
  const statement = JSON.parse(readFileSync(releaseFile, "utf8"));
  const measurement = statement.platforms.simulated.measurements[0];
  statement.platforms.simulated.measurements = [
    (measurement[0] === "0" ? "1" : "0") + measurement.slice(1),
  ];
  const otherRelease = join(work, "release-other-measurement.json");
  // Canonical as the release format requires: the parsed fields in their order, no spaces.
  writeFileSync(otherRelease, `${JSON.stringify(statement)}\n`);
  const otherDir = join(work, "server-other");
  const otherTap = await tap(enclave);
  const otherServer = await startServer(otherTap.addr, dist, [
    "--data-dir",
    otherDir,
    "--collateral-dir",
    collateralFor(otherDir),
    "--dev-release",
    otherRelease,
  ]);
  const otherLog = trustOf(otherDir).log.origin;
  assert.notEqual(otherLog, thisLog, "the second stack's log has its own keys");
  const otherUrls = [];
  const f = await opened("f", otherServer.origin, sent, otherUrls);
  // A database from before the log store existed (version 1: ledgers only) is upgraded in place.
  await f.page.evaluate(
    () =>
      new Promise((res, rej) => {
        const r = indexedDB.open("sotto", 1);
        r.onupgradeneeded = () =>
          r.result.createObjectStore("ledgers").put("{}", "an-earlier-account");
        r.onsuccess = () => (r.result.close(), res());
        r.onerror = () => rej(r.error);
      }),
  );
  await signUp(f.page);
  const notListed = await expectRefusal(
    f.page,
    sent,
    otherTap,
    `Not for an unreleased build ${canaries[0]}`,
    new RegExp(
      `^Refused the enclave, so nothing was sent: release refused: no release in the log lists this enclave's simulated measurement ${measurement}: it is not a build the release keys signed$`,
    ),
  );
  await shot(f.page, "12-unlisted-measurement-refused.png");
  assert.equal(
    await f.page.isVisible("#simulated-banner"),
    false,
    "no banner: no enclave was admitted",
  );
  const upgraded = await f.page.evaluate(
    () =>
      new Promise((res, rej) => {
        const r = indexedDB.open("sotto");
        r.onsuccess = () => {
          const db = r.result;
          const t = db.transaction(["ledgers", "logs"]);
          const old = t.objectStore("ledgers").get("an-earlier-account");
          const ledgers = t.objectStore("ledgers").count();
          const logs = t.objectStore("logs").getAllKeys();
          t.oncomplete = () => (
            db.close(),
            res({
              version: db.version,
              old: old.result,
              ledgers: ledgers.result,
              logs: logs.result,
            })
          );
          t.onerror = () => rej(t.error);
        };
        r.onerror = () => rej(r.error);
      }),
  );
  assert.deepEqual(
    upgraded,
    { version: 3, old: "{}", ledgers: 2, logs: [otherLog] },
    "the upgrade kept the old ledger; the verified log was stored though its release was refused",
  );
  assert.deepEqual(elsewhere(otherUrls, otherServer), []);

  step(
    "A bundle built with another stack's trust.json (SOTTO_WEB_TRUST) refuses this stack's log, naming both",
  );
  const pinnedDist = join(work, "dist-pinned");
  const buildStarted = Date.now();
  await run("bash", [join(repo, "scripts/web")], {
    SOTTO_WEB_ALLOW_SIMULATED: "1",
    SOTTO_WEB_TRUST: join(otherDir, "trust.json"),
    SOTTO_WEB_OUT: pinnedDist,
  });
  const pinnedBuildSecs = (Date.now() - buildStarted) / 1000;
  assert.notEqual(bundleDigest(pinnedDist), bundleDigest(dist), "the pinned bundle differs");
  const pinnedTap = await tap(enclave);
  // This stack's log and collateral, its trust.json included: the pinned bundle must ignore it.
  const pinnedServer = await startServer(pinnedTap.addr, pinnedDist, [
    "--data-dir",
    join(work, "server-pinned"),
    ...thisStacksLog,
  ]);
  const pinnedUrls = [];
  const g = await opened("g", pinnedServer.origin, sent, pinnedUrls);
  await signUp(g.page);
  const otherDeployment = await expectRefusal(
    g.page,
    sent,
    pinnedTap,
    `Not for another deployment ${canaries[0]}`,
    new RegExp(
      `^Refused the enclave, so nothing was sent: the release log cannot be trusted: this server's log is "${escapeRe(thisLog)}", not the log this client trusts \\("${escapeRe(otherLog)}"\\): a client set up for another deployment$`,
    ),
  );
  await shot(g.page, "13-pinned-client-refuses-another-log.png");
  assert.ok(
    pinnedUrls.includes(`${pinnedServer.origin}/log/checkpoint`),
    "the pinned bundle read the checkpoint",
  );
  assert.ok(
    !pinnedUrls.some((u) => u.includes("/log/tile/")),
    "and nothing more of a log it does not trust",
  );
  assert.deepEqual(elsewhere(pinnedUrls, pinnedServer), []);

  if (strictDist) {
    step(
      "The client a deployment ships (built without the simulated platform) refuses this enclave",
    );
    // It serves this stack's log too: the evidence is refused first, before any log check.
    const strictServer = await startServer(enclave, strictDist, [
      "--data-dir",
      join(work, "server-strict"),
      ...thisStacksLog,
    ]);
    const strictUrls = [];
    const d = await opened("d", strictServer.origin, sent, strictUrls);
    await signUp(d.page);
    await d.page.fill("#prompt", `Not for a simulated enclave ${canaries[0]}`);
    await d.page.click("#send");
    await d.page.waitForSelector("#status.error", { timeout: 30_000 });
    const strictRefusal = await statusText(d.page);
    assert.match(
      strictRefusal,
      /Refused the enclave, so nothing was sent: .*SIMULATED development platform/,
      strictRefusal,
    );
    assert.equal(
      await d.page.isVisible("#simulated-banner"),
      false,
      "no banner: nothing simulated was accepted",
    );
    assert.equal(await d.page.locator(".msg").count(), 0);
    await shot(d.page, "9-production-client-refuses-simulated.png");
    assert.ok(
      !strictUrls.some((u) => u.includes("/log/")),
      "the evidence was refused before any log check",
    );
    assert.deepEqual(elsewhere(strictUrls, strictServer), []);
  }

  step("A relay that requires anonymous tokens, reached directly, then through an independent hop");
  const tokenDir = join(work, "server-tokens");
  const tokenTap = await tap(enclave);
  const tokenServer = await startServer(tokenTap.addr, dist, [
    "--data-dir",
    tokenDir,
    "--collateral-dir",
    collateralFor(tokenDir),
    "--dev-release",
    releaseFile,
    "--require-tokens",
  ]);
  const hopPort = await start(
    ["hop", "--upstream", tokenServer.origin, "--listen", "127.0.0.1:0"],
    /hop: ws:\/\/127\.0\.0\.1:(\d+)/,
    30_000,
  );
  const hopRelay = `ws://127.0.0.1:${hopPort}/v1/relay`;
  const tokenUrls = [];
  const h = await opened("h", tokenServer.origin, sent, tokenUrls);
  const sockets = [];
  h.page.on("websocket", (ws) => sockets.push(ws.url()));
  await signUp(h.page);
  const tokenSql = (q) =>
    execFileSync("sqlite3", ["-cmd", ".timeout 10000", join(tokenDir, "accounts.sqlite"), q], {
      encoding: "utf8",
    }).trim();
  const direct = await chat(h.page, `Hello from a token ${canaries[0]}`);
  assert.ok(direct.length > 0, "answered over a token-paid relay connection");
  assert.match(
    await h.page.textContent("#verified-list"),
    /this server's; paid with an anonymous token/,
  );
  assert.equal(tokenSql("SELECT COUNT(*) FROM spent_tokens"), "1", "one token spent");
  await h.page.click("#manage-passkeys");
  await h.page.waitForSelector("#passkeys-dialog[open]");
  await h.page.fill("#hop", "ftp://hop.example");
  await h.page.click("#save-hop");
  assert.match(await h.page.textContent("#hop-state"), /^Not saved: the hop address must start/);
  await h.page.fill("#hop", `http://127.0.0.1:${hopPort}`);
  await h.page.click("#save-hop");
  assert.equal(
    await h.page.textContent("#hop-state"),
    `Saved: the next connection goes through ${hopRelay}.`,
  );
  await shot(h.page, "14-hop-setting.png");
  await h.page.click("#passkeys-dialog button[value='']");
  await h.page.click("#new-chat");
  const hopped = await chat(h.page, `Hello through a hop ${canaries[0]}`);
  assert.ok(hopped.length > 0, "answered through the hop");
  const relayRow = await h.page.textContent("#verified-list");
  assert.ok(
    relayRow.includes(`through the hop ${hopRelay}; paid with an anonymous token`),
    relayRow,
  );
  await shot(h.page, "15-chat-through-hop.png");
  assert.deepEqual(
    sockets.map((u) => u.replace(/\?prefer=[0-9a-f]{12}$/, "")),
    [`ws://localhost:${tokenServer.port}/v1/relay`, hopRelay],
    "the second channel went through the hop; each preferred the enclave the page picked",
  );
  assert.equal(tokenSql("SELECT COUNT(*) FROM spent_tokens"), "2", "the hop passed the token on");
  assert.deepEqual(
    elsewhere(tokenUrls, tokenServer).filter((u) => !u.startsWith(hopRelay)),
    [],
    "nothing but the hop besides the server",
  );

  step("The canaries and the recovery code never left the pages in the clear; no other origin");
  for (const s of sent) {
    for (const canary of canaries)
      assert.ok(!s.bytes.includes(canary), `${s.what} carries ${canary}`);
    for (const c of [code, newCode])
      assert.ok(!s.bytes.includes(c), `${s.what} carries a recovery code`);
    assert.ok(
      !s.bytes.toString().includes('"prf"') || s.what === "ws frame",
      `${s.what} carries a PRF result`,
    );
  }
  assert.ok(
    sent.some((s) => s.what.startsWith("PUT /v1/records/m.")),
    "messages were written",
  );
  const foreign = elsewhere(urls, server).filter((u) => !u.startsWith("data:"));
  assert.deepEqual(foreign, [], "no request to any other origin");
  // Nor anything the stack stored or logged: the server's and the enclave's data dirs (the
  // account database, keys, logs) and every line both processes printed.
  const stored = [
    serverDir,
    enclaveDir,
    otherDir,
    join(work, "server-pinned"),
    join(work, "server-strict"),
    tokenDir,
  ].flatMap((d) => (existsSync(d) ? files(d) : []));
  assert.ok(
    stored.some((f) => f.endsWith("accounts.sqlite")),
    "the account database is among the files searched",
  );
  assert.ok(
    stored.some((f) => f.startsWith(enclaveDir) && f.endsWith("sotto.log")),
    "the enclave's log is among the files searched",
  );
  for (const f of stored) {
    for (const canary of canaries)
      assert.ok(!readFileSync(f).includes(canary), `${f} holds ${canary}`);
  }
  for (const o of outputs) {
    assert.ok(o.text.length > 0, `${o.name} printed something`);
    for (const canary of canaries)
      assert.ok(!o.text.includes(canary), `${o.name}'s output holds ${canary}`);
  }

  for (const t of [hostile, otherTap, pinnedTap, tokenTap]) t.server.close();
  const wasm = statSync(join(dist, "sotto_web_bg.wasm")).size;
  const js = statSync(join(dist, "app.js")).size;
  console.log(
    `refusals: ${JSON.stringify({ not_listed: notListed, other_deployment: otherDeployment })}`,
  );
  console.log(
    JSON.stringify({
      ok: true,
      wasm_bytes: wasm,
      js_bytes: js,
      channel_finish_ms: finishMs,
      log_check_ms: logMs,
      log_check_again_ms: logMsAgain,
      pinned_build_s: pinnedBuildSecs,
      answer_ms: answerMs,
      dom_updates: updates,
      requests_checked: sent.length,
      seconds: (Date.now() - t0) / 1000,
    }),
  );
}

main()
  .catch(async (e) => {
    console.error(e);
    process.exitCode = 1;
    // What each page showed when it failed, for whoever reads the CI log.
    for (const [i, c] of contexts.entries()) {
      for (const page of c.pages()) {
        const status = await page.textContent("#status").catch(() => "?");
        console.error(`page ${i} status: ${status}`);
        await page.screenshot({ path: join(artifacts, `failure-${i}.png`) }).catch(() => {});
      }
    }
  })
  .finally(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    for (const c of children) c.kill("SIGTERM");
    rmSync(work, { recursive: true, force: true });
  });

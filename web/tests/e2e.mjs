// End-to-end acceptance of the web client in real Chromium, against the real stack: a `sotto
// enclave` (simulated platform, a real GGUF model) and a `sotto server` serving web/dist. A
// Chrome DevTools virtual authenticator (CTAP2.1, resident keys, user verification, PRF) plays
// the passkey. Checks: sign-up shows the recovery code once; a prompt streams an answer from
// the verified enclave and is saved encrypted; after a reload, passkey sign-in decrypts it; a
// recovery code on a fresh browser registers that browser's own passkey; a passkey without PRF
// is refused plainly; a canary typed in the page reaches neither a request body, a WebSocket
// frame nor the server's database. Screenshots go to artifacts/web/.
//
// Env: SOTTO_BIN (default $CARGO_TARGET_DIR/debug/sotto), SOTTO_MODEL (default the cached
// default model), CHROMIUM (default /usr/bin/chromium).

import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../..");
const dist = join(repo, "web/dist");
const bin = process.env.SOTTO_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(repo, "target"), "debug/sotto");
const model = process.env.SOTTO_MODEL ?? "/tmp/sotto-data/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const artifacts = join(repo, "artifacts/web");
mkdirSync(artifacts, { recursive: true });
const work = mkdtempSync(join(tmpdir(), "sotto-e2e-"));
const children = [];

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
    .map((rel) => `${createHash("sha256").update(readFileSync(join(dir, rel))).digest("hex")}  ${rel}\n`)
    .join("");
  return createHash("sha256").update(manifest).digest("hex");
}

/** Starts a process and resolves with the first stdout match of `pattern`. */
function start(args, pattern, timeoutMs) {
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let log = "";
  return new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`${args[0]} did not start in ${timeoutMs} ms:\n${log}`)), timeoutMs);
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

const chromeArgs = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

/** A fresh browser profile with its own virtual passkey authenticator. */
async function browser(name, { prf = true } = {}) {
  const context = await chromium.launchPersistentContext(join(work, `profile-${name}`), {
    executablePath: chromiumPath,
    headless: true,
    args: chromeArgs,
    viewport: { width: 1280, height: 800 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  await cdp.send("WebAuthn.addVirtualAuthenticator", {
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
  return { context, page };
}

/** Everything a page sends: request bodies and WebSocket frames. */
function record(page, sent) {
  page.on("request", (r) => {
    const body = r.postDataBuffer();
    if (body) sent.push({ what: `${r.method()} ${new URL(r.url()).pathname}`, bytes: body });
  });
  page.on("websocket", (ws) => ws.on("framesent", (f) => sent.push({ what: "ws frame", bytes: Buffer.from(f.payload) })));
}

async function main() {
  const t0 = Date.now();
  const enclaveDir = join(work, "enclave");
  const serverDir = join(work, "server");
  const enclave = await start(
    ["enclave", "--model", model, "--data-dir", enclaveDir, "--listen", "127.0.0.1:0", "--threads", "2"],
    /enclave listening on (\S+)/,
    300_000,
  );
  const port = await start(
    ["server", "--enclave", enclave, "--web-dir", dist, "--data-dir", serverDir, "--collateral-dir", join(enclaveDir, "collateral"), "--listen", "127.0.0.1:0"],
    /server listening on http:\/\/127\.0\.0\.1:(\d+)/,
    60_000,
  );
  const url = `http://localhost:${port}/`;
  console.log(`stack up in ${Date.now() - t0} ms at ${url}`);

  const served = (await (await fetch(`${url}.well-known/sotto-bundle.sha256`)).text()).trim();
  assert.equal(served, bundleDigest(dist), "the served bundle digest is the one computed from web/dist");
  const index = await fetch(url);
  assert.match(index.headers.get("content-security-policy") ?? "", /script-src 'self' 'wasm-unsafe-eval'/);

  const canary = `CANARY${randomBytes(6).toString("hex")}`;
  const sent = [];
  const consoleErrors = [];

  // Device A: sign up, chat, reload, sign in.
  const a = await browser("a");
  record(a.page, sent);
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
  await a.page.screenshot({ path: join(artifacts, "1-signup-recovery-code.png") });
  await a.page.check("#saved-check");
  await a.page.click("#saved");
  await a.page.waitForSelector("#app:not([hidden])");
  assert.equal(await a.page.textContent("#recovery-code"), "", "the code is gone once confirmed");

  const prompt = `Say hello to ${canary} in one short sentence.`;
  await a.page.evaluate(() => {
    window.__updates = 0;
    new MutationObserver(() => window.__updates++).observe(document.getElementById("messages"), { childList: true, characterData: true, subtree: true });
  });
  await a.page.fill("#prompt", prompt);
  const sentAt = Date.now();
  await a.page.click("#send");
  await a.page.waitForSelector(".msg.assistant[data-done=true]", { timeout: 240_000 });
  const answerMs = Date.now() - sentAt;
  await a.page.waitForFunction(() => /saved encrypted/.test(document.getElementById("status").textContent));
  const answer = await a.page.textContent(".msg.assistant");
  assert.ok(answer.trim().length > 0, "the enclave answered");
  const updates = await a.page.evaluate(() => window.__updates);
  assert.ok(updates > 3, `the answer streamed in pieces (${updates} DOM updates)`);
  assert.equal(await a.page.isVisible("#simulated-banner"), true, "the SIMULATED banner is up");
  const finishMs = Number(await a.page.getAttribute("#verified-list", "data-finish-ms"));
  const verified = await a.page.textContent("#verified-list");
  assert.match(verified, /Measurement[0-9a-f]{96}/);
  assert.match(verified, /Checked at/);
  await a.page.screenshot({ path: join(artifacts, "2-chat-streamed-answer.png") });
  await a.page.locator("#verified").screenshot({ path: join(artifacts, "3-verified-panel.png") });

  await a.page.reload();
  await a.page.waitForSelector("body[data-ready=true]");
  assert.equal(await a.page.isVisible("#app"), false, "a reload locks the vault");
  await a.page.click("#signin");
  await a.page.waitForSelector("#conversations li", { timeout: 30_000 });
  assert.equal(await a.page.textContent("#conversations li"), prompt, "the conversation's title decrypts after sign-in");
  await a.page.click("#conversations li");
  const transcript = await a.page.$$eval(".msg", (els) => els.map((e) => [e.className, e.textContent]));
  assert.deepEqual(transcript, [["msg user", prompt], ["msg assistant", answer]], "the saved turn decrypts whole");
  await a.page.click("#signout");
  await a.page.waitForSelector("#welcome:not([hidden])");

  // Device B: a fresh browser recovers with the code and registers its own passkey.
  const b = await browser("b");
  record(b.page, sent);
  await b.page.goto(url);
  await b.page.waitForSelector("body[data-ready=true]");
  await b.page.fill("#recover-code", "not a valid code");
  await b.page.click("#recover");
  await b.page.waitForSelector("#status.error");
  await b.page.fill("#recover-code", code);
  await b.page.click("#recover");
  await b.page.waitForSelector("#conversations li", { timeout: 30_000 });
  assert.equal(await b.page.textContent("#conversations li"), prompt);
  await b.page.click("#signout");
  await b.page.waitForSelector("#welcome:not([hidden])");
  await b.page.click("#signin");
  await b.page.waitForSelector("#conversations li", { timeout: 30_000 });
  assert.equal(await b.page.textContent("#conversations li"), prompt, "B's own passkey unlocks after recovery");

  // Device C: an authenticator without PRF is refused plainly, before any account exists.
  const c = await browser("c", { prf: false });
  record(c.page, sent);
  await c.page.goto(url);
  await c.page.waitForSelector("body[data-ready=true]");
  await c.page.click("#signup");
  await c.page.waitForSelector("#status.error", { timeout: 30_000 });
  assert.match(await c.page.textContent("#status"), /does not support the PRF extension/);
  const registerFinishes = sent.filter((s) => s.what === "POST /v1/account/register/finish").length;
  assert.equal(registerFinishes, 1, "only device A finished a sign-up");

  // The canary and the recovery code never left the pages in the clear.
  for (const s of sent) {
    assert.ok(!s.bytes.includes(canary), `${s.what} carries the canary`);
    assert.ok(!s.bytes.includes(code), `${s.what} carries the recovery code`);
    assert.ok(!s.bytes.toString().includes('"prf"') || s.what === "ws frame", `${s.what} carries a PRF result`);
  }
  assert.ok(sent.some((s) => s.what.startsWith("PUT /v1/records/m.")), "messages were written");
  for (const f of files(serverDir)) {
    assert.ok(!readFileSync(f).includes(canary), `${f} holds the canary`);
  }
  assert.deepEqual(consoleErrors, [], "no console errors");

  for (const ctx of [a, b, c]) await ctx.context.close();
  const wasm = statSync(join(dist, "sotto_web_bg.wasm")).size;
  const js = statSync(join(dist, "app.js")).size;
  console.log(JSON.stringify({ ok: true, wasm_bytes: wasm, js_bytes: js, channel_finish_ms: finishMs, answer_ms: answerMs, dom_updates: updates, requests_checked: sent.length, answer }));
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const c of children) c.kill("SIGTERM");
    rmSync(work, { recursive: true, force: true });
  });

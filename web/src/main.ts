// The page: plain DOM over the account, history and chat modules. Every piece of user text is
// put on the page with textContent, never as HTML.

import init, { Vault } from "../pkg/sotto_web.js";
import { ApiError, api } from "./api.js";
import { LockedSession, addPasskey, recover, signIn, signUp, unlockWithRecovery } from "./account.js";
import { Connection, type Verified } from "./chat.js";
import { type Conversation, type Message, nowMs, saveTurn, sync, title, updatedAt } from "./history.js";
import { NoPrfError } from "./passkey.js";

function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`the page has no #${id}`);
  return e as T;
}

const screens = ["welcome", "unlock", "recovery-show", "app"] as const;
function show(screen: (typeof screens)[number]): void {
  for (const s of screens) el(s).hidden = s !== screen;
}

function status(text: string, error = false): void {
  const s = el("status");
  s.textContent = text;
  s.classList.toggle("error", error);
}

function describe(e: unknown): string {
  if (e instanceof ApiError) return `The server said: ${e.message} (${e.code})`;
  if (e instanceof DOMException && e.name === "NotAllowedError") return "The passkey request was cancelled or timed out.";
  return e instanceof Error ? e.message : String(e);
}

interface State {
  vault: Vault | null;
  conn: Connection | null;
  convs: Map<string, Conversation>;
  current: string | null;
  transcript: Message[];
  lockedAccount: string | null;
}

const state: State = { vault: null, conn: null, convs: new Map(), current: null, transcript: [], lockedAccount: null };

async function busy(label: string, f: () => Promise<void>): Promise<void> {
  status(label);
  try {
    await f();
  } catch (e) {
    status(describe(e), true);
    if (e instanceof NoPrfError) el<HTMLInputElement>("recover-code").focus();
  }
}

async function enter(vault: Vault): Promise<void> {
  state.vault = vault;
  state.convs = await sync(vault);
  state.current = null;
  state.transcript = [];
  renderList();
  renderTranscript();
  show("app");
  status(`Signed in. ${state.convs.size} conversation(s) decrypted on this device.`);
}

function renderList(): void {
  const ul = el("conversations");
  ul.replaceChildren();
  const convs = [...state.convs.values()].sort((a, b) => updatedAt(b) - updatedAt(a));
  for (const c of convs) {
    const li = document.createElement("li");
    li.textContent = title(c);
    li.dataset.conv = c.id;
    li.classList.toggle("current", c.id === state.current);
    li.addEventListener("click", () => {
      state.current = c.id;
      state.transcript = c.messages.map((m) => m.message);
      renderList();
      renderTranscript();
    });
    ul.append(li);
  }
}

function bubble(m: { role: string; content: string }): HTMLElement {
  const d = document.createElement("div");
  d.className = `msg ${m.role}`;
  d.textContent = m.content;
  return d;
}

function renderTranscript(): void {
  el("messages").replaceChildren(...state.transcript.filter((m) => m.role !== "system").map(bubble));
}

function renderVerified(v: Verified): void {
  const s = v.summary;
  el("simulated-banner").hidden = !s.simulated && el("simulated-banner").hidden;
  const rows: [string, string][] = [
    ["Platform", s.simulated ? `${s.platform} (SIMULATED)` : s.platform],
    ["Measurement", s.measurement],
    ["Model", `${String(s.model.name ?? "")} sha256 ${String(s.model.sha256 ?? "")}`],
    ["Release", s.release],
    ["GPU attested", s.gpu_attested ? "yes" : "no"],
    ["TCB / verdict", JSON.stringify((s.verdict as { cpu?: unknown }).cpu ?? s.verdict)],
    ["Simulated root pinned", s.simulated ? (s.simulated_root_pinned ? "yes" : "no: any simulated enclave accepted") : "n/a"],
    ["Checked at", v.checkedAt.toISOString()],
    ["Verification took", `${v.finishMs.toFixed(1)} ms`],
  ];
  const dl = el("verified-list");
  dl.replaceChildren();
  for (const [k, val] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = val;
    dl.append(dt, dd);
  }
  el("verified-list").dataset.finishMs = v.finishMs.toFixed(2);
  el("verdict").textContent = JSON.stringify(s, null, 2);
  el("verified").hidden = false;
}

async function connection(): Promise<Connection> {
  if (state.conn?.open) return state.conn;
  status("Verifying the enclave…");
  const conn = await Connection.open();
  state.conn = conn;
  renderVerified(conn.verified);
  return conn;
}

async function ask(prompt: string): Promise<void> {
  const vault = state.vault;
  if (!vault) return;
  const conn = await connection();
  const user: Message = { role: "user", content: prompt, created_at: nowMs() };
  state.transcript.push(user);
  el("messages").append(bubble(user));
  const answerEl = bubble({ role: "assistant", content: "" });
  el("messages").append(answerEl);
  const stop = el<HTMLButtonElement>("stop");
  const send = el<HTMLButtonElement>("send");
  stop.disabled = false;
  send.disabled = true;
  status("The enclave is answering…");
  let answer = "";
  const outcome = await new Promise<{ ok: boolean; why?: string }>((resolve) => {
    stop.onclick = () => conn.close();
    conn.send(
      state.transcript.map((m) => ({ role: m.role, content: m.content })),
      {
        token: (piece) => {
          answer += piece;
          answerEl.textContent = answer;
        },
        done: () => resolve({ ok: true }),
        error: (why) => resolve({ ok: false, why }),
      },
    );
  });
  stop.disabled = true;
  send.disabled = false;
  if (!outcome.ok) {
    answerEl.classList.add("stopped");
    if (outcome.why !== "stopped") status(outcome.why ?? "the answer failed", true);
    else status("Stopped.");
    if (!answer) {
      state.transcript.pop();
      return;
    }
  }
  const reply: Message = { role: "assistant", content: answer, created_at: nowMs() };
  state.transcript.push(reply);
  answerEl.dataset.done = "true";
  try {
    state.current = await saveTurn(vault, state.current, user, reply);
    state.convs = await sync(vault);
    renderList();
    if (outcome.ok) status("Answer complete; saved encrypted.");
  } catch (e) {
    status(`This turn was not saved: ${describe(e)}`, true);
  }
}

function wire(): void {
  el("signup-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    void busy("Creating your passkey…", async () => {
      const name = el<HTMLInputElement>("display-name").value.trim();
      const { vault, recoveryCode } = await signUp(name, "this browser");
      state.vault = vault;
      el("recovery-code").textContent = recoveryCode;
      el<HTMLInputElement>("saved-check").checked = false;
      el<HTMLButtonElement>("saved").disabled = true;
      show("recovery-show");
      status("Account created.");
    });
  });
  el("saved-check").addEventListener("change", () => {
    el<HTMLButtonElement>("saved").disabled = !el<HTMLInputElement>("saved-check").checked;
  });
  el("saved").addEventListener("click", () => {
    el("recovery-code").textContent = "";
    const vault = state.vault;
    if (vault) void busy("Opening your history…", () => enter(vault));
  });
  el("signin").addEventListener("click", () => {
    void busy("Waiting for your passkey…", async () => {
      try {
        await enter(await signIn());
      } catch (e) {
        if (!(e instanceof LockedSession)) throw e;
        state.lockedAccount = e.account;
        el("unlock-why").textContent = e.message;
        show("unlock");
        status("Signed in, but this passkey cannot unlock your history.", true);
      }
    });
  });
  el("unlock-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const account = state.lockedAccount;
    const input = el<HTMLInputElement>("unlock-code");
    if (account) void busy("Unlocking…", async () => enter(await unlockWithRecovery(account, input.value)).finally(() => (input.value = "")));
  });
  el("recover-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = el<HTMLInputElement>("recover-code");
    void busy("Checking your recovery code…", async () => {
      const vault = await recover(input.value, "this browser");
      input.value = "";
      await enter(vault);
      status("Recovered: this browser now has its own passkey for your account.");
    });
  });
  el("add-passkey").addEventListener("click", () => {
    const vault = state.vault;
    if (vault) void busy("Creating a passkey…", async () => {
      await addPasskey(vault, "this browser");
      status("Passkey added.");
    });
  });
  el("new-chat").addEventListener("click", () => {
    state.current = null;
    state.transcript = [];
    renderList();
    renderTranscript();
  });
  el("prompt-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = el<HTMLTextAreaElement>("prompt");
    const prompt = input.value.trim();
    if (!prompt || el<HTMLButtonElement>("send").disabled) return;
    input.value = "";
    void busy("Sending…", () => ask(prompt));
  });
  el("signout").addEventListener("click", () => {
    void busy("Signing out…", async () => {
      state.conn?.close();
      state.conn = null;
      await api.signOut();
      state.vault?.free();
      state.vault = null;
      state.convs = new Map();
      state.transcript = [];
      renderTranscript();
      show("welcome");
      status("Signed out.");
    });
  });
}

async function main(): Promise<void> {
  await init({ module_or_path: new URL("sotto_web_bg.wasm", import.meta.url) });
  wire();
  show("welcome");
  status(window.PublicKeyCredential ? "" : "This browser has no passkey support (WebAuthn).", !window.PublicKeyCredential);
  document.body.dataset.ready = "true";
}

main().catch((e) => status(`Sotto could not start: ${describe(e)}`, true));

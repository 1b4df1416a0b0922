// The page: plain DOM over the account, history and chat modules. Every piece of user text is
// put on the page with textContent or the allowlist Markdown renderer, never as HTML.

import init, { type Client, type Locked } from "../pkg/sotto_web.js";
import {
  LockedSession,
  addPasskey,
  deleteAccount,
  deviceName,
  listPasskeys,
  recover,
  removePasskey,
  rotateRecovery,
  signIn,
  signOut,
  signUp,
  unlockWithRecovery,
} from "./account.js";
import { Connection } from "./chat.js";
import { folders, renderList } from "./conversations.js";
import { ask, describe, el, make, status } from "./dom.js";
import { saveHop, savedHop } from "./hop.js";
import {
  type Conversation,
  type Message,
  type Turn,
  conversation,
  conversations,
  editHeader,
  nowMs,
  pull,
  remove,
  removeMessage,
  saveTurn,
} from "./history.js";
import { renderMessage } from "./markdown.js";
import { NoPrfError } from "./passkey.js";
import { themeSwitch } from "./theme.js";
import { renderRefused, renderVerified } from "./verified.js";

const screens = ["welcome", "unlock", "recovery-show", "app"] as const;
function show(screen: (typeof screens)[number]): void {
  for (const s of screens) el(s).hidden = s !== screen;
}

interface State {
  client: Client | null;
  /** The history has been pulled and shown (false while a new account's code is shown). */
  entered: boolean;
  conn: Connection | null;
  current: string | null;
  transcript: Turn[];
  locked: Locked | null;
  streaming: boolean;
}

const state: State = {
  client: null,
  entered: false,
  conn: null,
  current: null,
  transcript: [],
  locked: null,
  streaming: false,
};

async function busy(label: string, f: () => Promise<void>): Promise<void> {
  status(label);
  try {
    await f();
  } catch (e) {
    status(describe(e), true);
    if (e instanceof NoPrfError) el<HTMLInputElement>("recover-code").focus();
  }
}

function convs(): Conversation[] {
  return state.client ? conversations(state.client) : [];
}

function currentConv(): Conversation | undefined {
  return convs().find((c) => c.id === state.current);
}

/** The saved messages of the conversation shown. */
function savedTurns(): Turn[] {
  return state.current && state.client
    ? (conversation(state.client, state.current)?.messages ?? [])
    : [];
}

async function enter(client: Client): Promise<void> {
  try {
    await pull(client);
  } catch (e) {
    // Nothing of a refused history is shown, and its keys go now.
    if (state.client === client) state.client = null;
    client.free();
    throw e;
  }
  state.client = client;
  state.entered = true;
  state.current = null;
  state.transcript = [];
  refresh();
  show("app");
  status(`Signed in. ${convs().length} conversation(s) decrypted on this device.`);
}

function select(conv: string | null): void {
  if (state.streaming) return;
  state.current = conv;
  state.transcript = savedTurns();
  el("app").classList.remove("show-sidebar");
  refresh();
}

function refresh(): void {
  refreshList();
  refreshHead();
  renderTranscript();
  buttons();
}

function refreshHead(): void {
  const c = currentConv();
  el("conv-title").textContent = c ? c.title : "New chat";
  el("conv-folder").textContent = c?.folder ?? "";
  el<HTMLButtonElement>("edit-conv").disabled = !c || state.streaming;
  el<HTMLButtonElement>("delete-conv").disabled = !c || state.streaming;
}

function refreshList(): void {
  renderList(convs(), {
    into: el("conversations"),
    query: el<HTMLInputElement>("search").value,
    current: state.current,
    select,
  });
}

function buttons(): void {
  // Signing out frees the client the streaming turn is about to be saved with: stop first.
  el<HTMLButtonElement>("signout").disabled = state.streaming;
  el<HTMLButtonElement>("send").disabled = state.streaming;
  el<HTMLButtonElement>("stop").disabled = !state.streaming;
  el<HTMLButtonElement>("regenerate").disabled =
    state.streaming || state.transcript.at(-1)?.message.role !== "assistant";
}

function bubble(m: Message): { box: HTMLElement; body: HTMLElement } {
  const box = make("div", `msg ${m.role}`);
  const body = make("div", "md");
  renderMessage(body, m.content);
  box.append(body);
  return { box, body };
}

function renderTranscript(): void {
  el("messages").replaceChildren(
    ...state.transcript
      .filter((t) => t.message.role !== "system")
      .map((t) => {
        const { box } = bubble(t.message);
        if (t.message.role === "assistant") box.dataset.done = "true";
        box.classList.toggle(
          "stopped",
          t.stopped === true || t.message.incomplete === "interrupted",
        );
        box.classList.toggle("incomplete", t.message.incomplete === "length");
        return box;
      }),
  );
}

/** The open attested channel, or a new one whose evidence this page has just verified. */
async function connection(): Promise<Connection> {
  if (state.conn?.open) return state.conn;
  status("Verifying the enclave and the release log…");
  try {
    state.conn = await Connection.open(state.client, savedHop());
  } catch (e) {
    state.conn = null;
    renderRefused(describe(e));
    el("app").classList.add("show-verified");
    throw new Error(`Refused the enclave, so nothing was sent: ${describe(e)}`);
  }
  renderVerified(state.conn.verified);
  return state.conn;
}

/** How a streamed answer ended: `cut` when the enclave stopped it at a length limit. */
interface Outcome {
  ok: boolean;
  why?: string;
  cut?: boolean;
}

/** Streams an answer to the transcript (after `question`, when given) and saves the turn; a
 *  regenerated answer replaces `replacing`. A failure before any token puts things back. */
async function generate(question: string | null, replacing: Turn | null): Promise<void> {
  const client = state.client;
  if (!client || state.streaming) return;
  const conn = await connection();
  const prompt = el<HTMLTextAreaElement>("prompt");
  let user: Turn | null = null;
  if (question !== null) {
    prompt.value = "";
    user = { message: { role: "user", content: question, created_at: nowMs() } };
    state.transcript.push(user);
  }
  state.streaming = true;
  refresh();
  const answerEl = bubble({ role: "assistant", content: "", created_at: 0 });
  el("messages").append(answerEl.box);
  answerEl.box.scrollIntoView({ block: "end" });
  status("The enclave is answering…");
  let answer = "";
  let painting = false;
  const paint = () => {
    painting = false;
    renderMessage(answerEl.body, answer);
    answerEl.box.scrollIntoView({ block: "end" });
  };
  const outcome = await new Promise<Outcome>((resolve) => {
    el("stop").onclick = () => conn.close();
    conn.send(
      state.transcript.map((t) => ({ role: t.message.role, content: t.message.content })),
      {
        token: (piece) => {
          answer += piece;
          if (!painting) {
            painting = true;
            requestAnimationFrame(paint);
          }
        },
        // The enclave says why it stopped (crates/channel `Stop`).
        done: (stats) =>
          resolve({ ok: true, cut: stats.stop === "max_tokens" || stats.stop === "context_full" }),
        error: (why) => resolve({ ok: false, why }),
      },
    );
  }).catch((e: unknown): Outcome => ({ ok: false, why: describe(e) }));
  // The turn stays in progress (no pulls, no switching) until it is saved; only Stop is moot.
  el<HTMLButtonElement>("stop").disabled = true;
  paint();
  const why = outcome.why === "stopped" ? "Stopped." : (outcome.why ?? "the answer failed");
  if (!outcome.ok && !answer) {
    // Nothing came back: undo the turn so nothing half-done is saved or lost.
    if (user) {
      state.transcript.pop();
      prompt.value = question ?? "";
    }
    if (replacing) state.transcript.push(replacing);
    state.streaming = false;
    refresh();
    status(
      outcome.why === "stopped"
        ? "Stopped before any answer; your message is back in the box."
        : why,
      outcome.why !== "stopped",
    );
    return;
  }
  if (!outcome.ok) answerEl.box.classList.add("stopped");
  const reply: Turn = {
    message: {
      role: "assistant",
      content: answer,
      created_at: nowMs(),
      incomplete: !outcome.ok ? "interrupted" : outcome.cut ? "length" : undefined,
    },
    stopped: !outcome.ok,
  };
  state.transcript.push(reply);
  answerEl.box.dataset.done = "true";
  try {
    const toSave = user ? [user, reply] : [reply];
    const saved = await saveTurn(
      client,
      state.current,
      toSave.map((t) => t.message),
    );
    toSave.forEach((t, i) => (t.id = saved.ids[i]));
    if (replacing?.id) await removeMessage(client, saved.conv, replacing.id);
    state.current = saved.conv;
    await pull(client);
    state.streaming = false;
    refresh();
    status(
      !outcome.ok
        ? `${why} The partial answer was saved encrypted.`
        : outcome.cut
          ? "The answer stopped at the length limit; saved encrypted, marked incomplete."
          : "Answer complete; saved encrypted.",
      !outcome.ok && outcome.why !== "stopped",
    );
  } catch (e) {
    state.streaming = false;
    buttons();
    status(`This turn was not saved: ${describe(e)}`, true);
  }
}

async function editCurrent(): Promise<void> {
  const c = currentConv();
  const client = state.client;
  if (!c || !client) return;
  const titleInput = el<HTMLInputElement>("edit-title");
  const folderInput = el<HTMLInputElement>("edit-folder");
  titleInput.value = c.title;
  folderInput.value = c.folder;
  el("folder-list").replaceChildren(
    ...folders(convs()).map((f) => Object.assign(make("option"), { value: f })),
  );
  if ((await ask(el<HTMLDialogElement>("edit-dialog"))) !== "save") return;
  const edit: { title?: string; folder?: string } = {};
  if (titleInput.value.trim() !== c.title) edit.title = titleInput.value.trim();
  if (folderInput.value.trim() !== c.folder) edit.folder = folderInput.value.trim();
  if (edit.title === undefined && edit.folder === undefined) return;
  await busy("Saving…", async () => {
    await editHeader(client, c.id, edit);
    await pull(client);
    refresh();
    status("Saved encrypted.");
  });
}

async function deleteCurrent(): Promise<void> {
  const c = currentConv();
  const client = state.client;
  if (!c || !client) return;
  el("delete-title").textContent = c.title;
  if ((await ask(el<HTMLDialogElement>("delete-dialog"))) !== "delete") return;
  await busy("Deleting…", async () => {
    await remove(client, c.id);
    await pull(client);
    select(null);
    status("Conversation deleted.");
  });
}

async function renderPasskeys(client: Client): Promise<void> {
  const ul = el("passkey-list");
  const keys = await listPasskeys(client);
  const mine = client.credential_id();
  ul.replaceChildren(
    ...keys.map((k) => {
      const li = make("li");
      const when =
        `added ${new Date(k.created_at * 1000).toLocaleString()}` +
        (k.last_used_at ? `, last used ${new Date(k.last_used_at * 1000).toLocaleString()}` : "");
      li.append(
        make("strong", undefined, k.name || "(unnamed)"),
        make("span", "muted", ` ${when} `),
      );
      if (k.credential_id === mine)
        li.append(make("span", "this-passkey", "(signed in with this one) "));
      const rm = make("button", "quiet danger remove-passkey", "Remove");
      rm.type = "button";
      rm.disabled = keys.length === 1;
      rm.addEventListener("click", () => {
        if (rm.dataset.armed !== "true") {
          rm.dataset.armed = "true";
          rm.textContent = "Click again to remove";
          return;
        }
        void busy("Removing the passkey…", async () => {
          await removePasskey(client, k.credential_id);
          // The server ended every session the passkey opened, this one among them.
          if (k.credential_id === mine) {
            el<HTMLDialogElement>("passkeys-dialog").close();
            forget();
            status("Passkey removed; it signed this session in, so sign in again with another.");
            return;
          }
          await renderPasskeys(client);
          status("Passkey removed; it can no longer sign in or unlock your history.");
        });
      });
      li.append(rm);
      return li;
    }),
  );
}

/** Takes in other devices' changes without disturbing an answer being streamed. */
async function pullQuietly(): Promise<void> {
  const client = state.client;
  if (!client || !state.entered || state.streaming) return;
  try {
    await pull(client);
  } catch (e) {
    status(describe(e), true);
    return;
  }
  if (state.streaming || state.client !== client) return;
  if (state.current && !currentConv()) select(null);
  const saved = state.current ? savedTurns() : null;
  // Only a conversation that changed elsewhere is redrawn, so what is on screen (an answer
  // marked as stopped, the scroll position) stays put otherwise.
  const ids = (turns: Turn[]) => turns.map((t) => t.id ?? "").join(" ");
  if (saved && ids(saved) !== ids(state.transcript)) {
    state.transcript = [...saved];
    refresh();
  } else {
    refreshList();
    refreshHead();
  }
}

/** Shows a recovery code exactly once, until the user confirms they saved it. */
function showRecoveryCode(code: string): void {
  el("recovery-code").textContent = code;
  el<HTMLInputElement>("saved-check").checked = false;
  el<HTMLButtonElement>("saved").disabled = true;
  show("recovery-show");
}

/** Drops everything this page knew of the account and goes back to the welcome screen. */
function forget(): void {
  state.conn?.close();
  state.conn = null;
  state.client?.free();
  state.client = null;
  state.entered = false;
  state.locked?.free();
  state.locked = null;
  state.current = null;
  state.transcript = [];
  renderTranscript();
  el<HTMLInputElement>("delete-account-check").checked = false;
  el<HTMLButtonElement>("delete-account").disabled = true;
  show("welcome");
}

function wire(): void {
  themeSwitch(el("theme"));
  el("signup-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    void busy("Creating your passkey…", async () => {
      const name = el<HTMLInputElement>("display-name").value.trim();
      const { client, recoveryCode } = await signUp(name, deviceName());
      state.client = client;
      showRecoveryCode(recoveryCode);
      status("Account created.");
    });
  });
  el("saved-check").addEventListener("change", () => {
    el<HTMLButtonElement>("saved").disabled = !el<HTMLInputElement>("saved-check").checked;
  });
  el("saved").addEventListener("click", () => {
    el("recovery-code").textContent = "";
    const client = state.client;
    if (state.entered) {
      show("app");
      status("The new recovery code is in place; the old one no longer works.");
    } else if (client) void busy("Opening your history…", () => enter(client));
  });
  el("signin").addEventListener("click", () => {
    void busy("Waiting for your passkey…", async () => {
      try {
        await enter(await signIn());
      } catch (e) {
        if (!(e instanceof LockedSession)) throw e;
        state.locked?.free();
        state.locked = e.locked;
        el("unlock-why").textContent = e.message;
        show("unlock");
        status("Signed in, but this passkey cannot unlock your history.", true);
      }
    });
  });
  el("unlock-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const locked = state.locked;
    const input = el<HTMLInputElement>("unlock-code");
    if (locked)
      void busy("Unlocking…", async () => {
        try {
          const client = await unlockWithRecovery(locked, input.value);
          state.locked = null;
          locked.free();
          await enter(client);
        } finally {
          input.value = "";
        }
      });
  });
  el("recover-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = el<HTMLInputElement>("recover-code");
    void busy("Checking your recovery code…", async () => {
      const client = await recover(input.value, deviceName());
      input.value = "";
      await enter(client);
      status("Recovered: this browser now has its own passkey for your account.");
    });
  });
  el("manage-passkeys").addEventListener("click", () => {
    const client = state.client;
    if (client)
      void busy("Loading your passkeys…", async () => {
        await renderPasskeys(client);
        el<HTMLInputElement>("hop").value = savedHop() ?? "";
        el("hop-state").textContent = "";
        status("");
        await ask(el<HTMLDialogElement>("passkeys-dialog"));
      });
  });
  el("save-hop").addEventListener("click", () => {
    const shown = el("hop-state");
    let hop: string | null;
    try {
      hop = saveHop(el<HTMLInputElement>("hop").value);
    } catch (e) {
      shown.textContent = `Not saved: ${describe(e)}.`;
      return;
    }
    el<HTMLInputElement>("hop").value = hop ?? "";
    // The next message opens a new channel by the new route.
    if (!state.streaming) {
      state.conn?.close();
      state.conn = null;
    }
    shown.textContent = hop
      ? `Saved: the next connection goes through ${hop}.`
      : "Saved: connections go to this server's own relay.";
  });
  el("add-passkey").addEventListener("click", () => {
    const client = state.client;
    if (client)
      void busy("Creating a passkey…", async () => {
        await addPasskey(client, deviceName());
        await renderPasskeys(client);
        status("Passkey added.");
      });
  });
  el("rotate-recovery").addEventListener("click", () => {
    const client = state.client;
    if (client)
      void busy("Making a new recovery code…", async () => {
        const code = await rotateRecovery(client);
        el<HTMLDialogElement>("passkeys-dialog").close();
        showRecoveryCode(code);
        status("Your new recovery code.");
      });
  });
  el("delete-account-check").addEventListener("change", () => {
    el<HTMLButtonElement>("delete-account").disabled =
      !el<HTMLInputElement>("delete-account-check").checked;
  });
  el("delete-account").addEventListener("click", () => {
    const client = state.client;
    if (client)
      void busy("Deleting your account…", async () => {
        await deleteAccount(client);
        el<HTMLDialogElement>("passkeys-dialog").close();
        forget();
        status("Your account and everything in it were deleted from the server.");
      });
  });
  el("new-chat").addEventListener("click", () => select(null));
  el("search").addEventListener("input", () => refreshList());
  el("edit-conv").addEventListener("click", () => void editCurrent());
  el("delete-conv").addEventListener("click", () => void deleteCurrent());
  el("toggle-sidebar").addEventListener("click", () => el("app").classList.toggle("show-sidebar"));
  el("toggle-verified").addEventListener("click", () =>
    el("app").classList.toggle("show-verified"),
  );
  for (const b of document.querySelectorAll(".close-overlay")) {
    b.addEventListener("click", () => el("app").classList.remove("show-sidebar", "show-verified"));
  }
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && !el<HTMLButtonElement>("stop").disabled) el("stop").click();
  });
  el("prompt").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      el<HTMLFormElement>("prompt-form").requestSubmit();
    }
  });
  el("prompt-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const prompt = el<HTMLTextAreaElement>("prompt").value.trim();
    if (!prompt || state.streaming) return;
    void busy("Sending…", () => generate(prompt, null));
  });
  el("regenerate").addEventListener("click", () => {
    const last = state.transcript.at(-1);
    if (state.streaming || last?.message.role !== "assistant") return;
    state.transcript.pop();
    renderTranscript();
    void busy("Regenerating…", async () => {
      try {
        await generate(null, last);
      } catch (e) {
        state.transcript.push(last);
        refresh();
        throw e;
      }
    });
  });
  // Coming back to the tab, and every half minute while it is shown, picks up what other
  // devices changed meanwhile.
  window.addEventListener("focus", () => void pullQuietly());
  setInterval(() => document.visibilityState === "visible" && void pullQuietly(), 30_000);
  el("signout").addEventListener("click", () => {
    const client = state.client;
    if (client)
      void busy("Signing out…", async () => {
        await signOut(client);
        forget();
        status("Signed out.");
      });
  });
}

async function main(): Promise<void> {
  await init({ module_or_path: new URL("sotto_web_bg.wasm", import.meta.url) });
  wire();
  show("welcome");
  status(
    window.PublicKeyCredential ? "" : "This browser has no passkey support (WebAuthn).",
    !window.PublicKeyCredential,
  );
  document.body.dataset.ready = "true";
}

main().catch((e) => status(`Sotto could not start: ${describe(e)}`, true));

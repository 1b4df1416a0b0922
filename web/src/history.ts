// Encrypted history, as the CLI keeps it (crates/cli/src/history.rs): every record is opened
// through the wasm vault, failing closed on the first refused one; each chat turn is saved as
// a conversation key, a header and append-only messages; title and folder edits merge with
// other devices' edits.

import { Vault, edit_header, new_header } from "../pkg/sotto_web.js";
import { ApiError, type RecordOut, api } from "./api.js";
import { saveLedger } from "./account.js";

export type Role = "system" | "user" | "assistant";

export interface Message {
  role: Role;
  content: string;
  created_at: number;
}

/** A message on screen: `id` is its record's id once saved; `stopped` marks an answer cut
 *  short in this session. */
export interface Turn {
  id?: string;
  message: Message;
  stopped?: boolean;
}

export interface Header {
  title: string;
  title_at: number;
  folder: string;
  folder_at: number;
  created_at: number;
}

export interface Conversation {
  id: string;
  header: Header | null;
  messages: Turn[];
}

let lastMs = 0;
/** Milliseconds, strictly increasing: a question and its answer never share a timestamp. */
export function nowMs(): number {
  lastMs = Math.max(Date.now(), lastMs + 1);
  return lastMs;
}

type Item =
  | { type: "wrap"; id: string }
  | { type: "conversation_key"; id: string; conv: string }
  | { type: "header"; id: string; conv: string; version: number; header: Header }
  | { type: "message"; id: string; conv: string; msg: string; message: Message }
  | { type: "deleted"; id: string; conv?: string }
  | { type: "error"; id: string; code: string; message: string };

export class RefusedHistory extends Error {}

function open(vault: Vault, records: RecordOut[]): Item[] {
  const items = JSON.parse(vault.open_batch(JSON.stringify(records))) as Item[];
  const refused = items.find((i) => i.type === "error");
  if (refused && refused.type === "error") {
    throw new RefusedHistory(`refusing the history: record ${refused.id}: ${refused.message} (${refused.code})`);
  }
  return items;
}

/** The decrypted history, kept up to date from the server's change feed: the first pull
 *  opens everything, later ones only what changed since (other devices' edits included). */
export class History {
  readonly convs = new Map<string, Conversation>();
  private since = 0;

  constructor(private readonly vault: Vault) {}

  /** Fetches and opens every change since the last pull; one refused record refuses them all
   *  and leaves what is shown untouched. */
  async pull(): Promise<void> {
    const { records, next } = await api.changes(this.since);
    if (records.length > 0) this.apply(open(this.vault, records));
    this.since = next;
    // Only opening records moves the ledger.
    if (records.length > 0) await saveLedger(this.vault);
  }

  private apply(items: Item[]): void {
    const touched = new Set<Conversation>();
    for (const i of items) {
      if (i.type === "conversation_key" && !this.convs.has(i.conv)) this.convs.set(i.conv, { id: i.conv, header: null, messages: [] });
    }
    for (const i of items) {
      const c = "conv" in i && i.conv ? this.convs.get(i.conv) : undefined;
      if (!c) continue;
      if (i.type === "header") c.header = i.header;
      else if (i.type === "message") {
        c.messages = c.messages.filter((t) => t.id !== i.id);
        c.messages.push({ id: i.id, message: i.message });
        touched.add(c);
      } else if (i.type === "deleted") {
        if (i.id.startsWith("ck.")) this.convs.delete(c.id);
        else if (i.id.startsWith("ch.")) c.header = null;
        else c.messages = c.messages.filter((t) => t.id !== i.id);
      }
    }
    for (const c of touched) {
      c.messages.sort((a, b) => a.message.created_at - b.message.created_at || ((a.id ?? "") < (b.id ?? "") ? -1 : 1));
    }
  }
}

export function title(c: Conversation): string {
  return c.header?.title || "(untitled)";
}

export function folder(c: Conversation): string {
  return c.header?.folder ?? "";
}

export function updatedAt(c: Conversation): number {
  const last = c.messages.at(-1)?.message.created_at ?? 0;
  return Math.max(last, c.header?.title_at ?? 0, c.header?.folder_at ?? 0);
}

/** Starts a conversation: its key first, then its header. */
export async function start(vault: Vault, titleText: string): Promise<string> {
  const key = JSON.parse(vault.new_conversation()) as { conv: string };
  await api.put(JSON.stringify(key));
  await api.put(vault.seal_header(key.conv, new_header(titleText, nowMs()), 0));
  return key.conv;
}

/** Saves one message; returns its record id. */
export async function append(vault: Vault, conv: string, message: Message): Promise<string> {
  const sealed = vault.seal_message(conv, JSON.stringify(message));
  await api.put(sealed);
  return (JSON.parse(sealed) as { id: string }).id;
}

/** Saves messages of a turn, starting the conversation (titled with the first question) when
 *  there is none yet; returns the conversation id and the new records' ids. */
export async function saveTurn(vault: Vault, conv: string | null, messages: Message[]): Promise<{ conv: string; ids: string[] }> {
  const firstQuestion = messages.find((m) => m.role === "user")?.content ?? "";
  const id = conv ?? (await start(vault, [...firstQuestion].slice(0, 60).join("")));
  const ids = [];
  for (const m of messages) ids.push(await append(vault, id, m));
  return { conv: id, ids };
}

/** Deletes one saved message (a regenerated answer replaces the old one). */
export async function removeMessage(id: string): Promise<void> {
  try {
    await api.deleteRecord(id);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 404)) throw e;
  }
}

/** Sets the title and/or folder, merged over the server's latest header so a concurrent edit
 *  of the other field on another device is kept; retried on a version conflict. */
export async function editHeader(vault: Vault, conv: string, edit: { title?: string; folder?: string }): Promise<Header> {
  const id = `ch.${conv}`;
  for (let attempt = 0; attempt < 8; attempt++) {
    let base: Header = { title: "", title_at: 0, folder: "", folder_at: 0, created_at: 0 };
    const record = await api.find(id);
    const version = record?.version ?? 0;
    const opened = record ? open(vault, [record]).find((i) => i.type === "header") : undefined;
    if (opened && opened.type === "header") base = opened.header;
    const merged = edit_header(JSON.stringify(base), edit.title, edit.folder, nowMs());
    try {
      await api.put(vault.seal_header(conv, merged, version));
      await saveLedger(vault);
      return JSON.parse(merged) as Header;
    } catch (e) {
      if (!(e instanceof ApiError && e.code === "conflict")) throw e;
    }
  }
  throw new Error("another device kept changing this conversation's header; try again");
}

/** Crypto-shreds a conversation: its key, header and messages go. */
export async function remove(conv: string): Promise<void> {
  await api.deleteGroup(conv);
}

// Encrypted history, as the CLI keeps it (crates/cli/src/history.rs): sync opens every record
// through the wasm vault and fails closed on the first refused one; each chat turn is saved as
// a conversation key, a header and append-only messages.

import { Vault, new_header } from "../pkg/sotto_web.js";
import { api } from "./api.js";
import { saveLedger } from "./account.js";

export type Role = "system" | "user" | "assistant";

export interface Message {
  role: Role;
  content: string;
  created_at: number;
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
  messages: { id: string; message: Message }[];
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
  | { type: "header"; id: string; conv: string; header: Header }
  | { type: "message"; id: string; conv: string; msg: string; message: Message }
  | { type: "deleted"; id: string; conv?: string }
  | { type: "error"; id: string; code: string; message: string };

export class RefusedHistory extends Error {}

/** Fetches and opens every record; one refused record refuses the whole history. */
export async function sync(vault: Vault): Promise<Map<string, Conversation>> {
  const latest = new Map<string, unknown>();
  for (const r of await api.allChanges(0)) latest.set(r.id, r);
  const items = JSON.parse(vault.open_batch(JSON.stringify([...latest.values()]))) as Item[];
  const refused = items.find((i) => i.type === "error");
  if (refused && refused.type === "error") {
    throw new RefusedHistory(`refusing the history: record ${refused.id}: ${refused.message} (${refused.code})`);
  }
  const convs = new Map<string, Conversation>();
  for (const i of items) {
    if (i.type === "conversation_key") convs.set(i.conv, { id: i.conv, header: null, messages: [] });
  }
  for (const i of items) {
    const c = "conv" in i && i.conv ? convs.get(i.conv) : undefined;
    if (i.type === "header" && c) c.header = i.header;
    else if (i.type === "message" && c) c.messages.push({ id: i.msg, message: i.message });
    else if (i.type === "deleted" && i.id.startsWith("ck.") && i.conv) convs.delete(i.conv);
  }
  for (const c of convs.values()) {
    c.messages.sort((a, b) => a.message.created_at - b.message.created_at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
  saveLedger(vault);
  return convs;
}

export function title(c: Conversation): string {
  return c.header?.title || "(untitled)";
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

export async function append(vault: Vault, conv: string, message: Message): Promise<void> {
  await api.put(vault.seal_message(conv, JSON.stringify(message)));
}

/** Saves one turn like the CLI: a new conversation is titled with its first question. */
export async function saveTurn(vault: Vault, conv: string | null, user: Message, answer: Message): Promise<string> {
  const id = conv ?? (await start(vault, [...user.content].slice(0, 60).join("")));
  await append(vault, id, user);
  await append(vault, id, answer);
  saveLedger(vault);
  return id;
}

export async function remove(conv: string): Promise<void> {
  await api.deleteGroup(conv);
}

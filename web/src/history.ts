// Encrypted history, read from and written through the wasm client (the CLI's history code,
// crates/client): pulls fold the change feed into the client's history, failing closed on the
// first refused record; saving a turn, header edits (merged with other devices' and retried on
// a conflict) and deletions are its flows, run by drive.ts. This file adds the rollback
// ledger's saving and the shapes the page renders.

import type { Client } from "../pkg/sotto_web.js";
import { saveLedger } from "./account.js";
import { run } from "./drive.js";

export type Role = "system" | "user" | "assistant";

export interface Message {
  role: Role;
  content: string;
  created_at: number;
  /** On an answer cut short, saved with it: at a length limit, or interrupted mid-stream. */
  incomplete?: "length" | "interrupted";
}

/** A message on screen: `id` is its message id once saved; `stopped` marks an answer cut
 *  short in this session (a saved one says so in `message.incomplete`). */
export interface Turn {
  id?: string;
  message: Message;
  stopped?: boolean;
}

/** A conversation in the list. */
export interface Conversation {
  id: string;
  title: string;
  folder: string;
  updated_at: number;
}

export interface Opened extends Conversation {
  messages: Turn[];
}

let lastMs = 0;
/** Milliseconds, strictly increasing: a question and its answer never share a timestamp. */
export function nowMs(): number {
  lastMs = Math.max(Date.now(), lastMs + 1);
  return lastMs;
}

/** Every conversation pulled so far, most recently updated first. */
export function conversations(client: Client): Conversation[] {
  return JSON.parse(client.conversations_json()) as Conversation[];
}

export function conversation(client: Client, id: string): Opened | undefined {
  const json = client.conversation_json(id);
  return json === undefined ? undefined : (JSON.parse(json) as Opened);
}

/** Takes in every change since the last pull; one refused record refuses them all and leaves
 *  what is shown untouched. */
export async function pull(client: Client): Promise<void> {
  const changed = await run(client.pull(), (done) => done.count());
  // Only opening records moves the ledger.
  if (changed > 0) await saveLedger(client);
}

/** Saves messages of a turn, starting the conversation (titled with the first question) when
 *  there is none yet; returns the conversation id and the new messages' ids. */
export async function saveTurn(
  client: Client,
  conv: string | null,
  messages: Message[],
): Promise<{ conv: string; ids: string[] }> {
  return run(
    client.save_turn(conv ?? undefined, JSON.stringify(messages)),
    (done) => JSON.parse(done.saved_json()) as { conv: string; ids: string[] },
  );
}

/** Deletes one saved message (a regenerated answer replaces the old one). */
export async function removeMessage(client: Client, conv: string, msg: string): Promise<void> {
  await run(client.delete_message(conv, msg), () => undefined);
}

/** Sets the title and/or folder, merged over the server's latest header. */
export async function editHeader(
  client: Client,
  conv: string,
  edit: { title?: string; folder?: string },
): Promise<void> {
  await run(client.edit_header(conv, edit.title, edit.folder, nowMs()), () => undefined);
  await saveLedger(client);
}

/** Crypto-shreds a conversation: its key, header and messages go. */
export async function remove(client: Client, conv: string): Promise<void> {
  await run(client.delete_conversation(conv), () => undefined);
}

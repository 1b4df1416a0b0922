// The one driver of the client core's flows (crates/web/src/flows.rs, the CLI's own code): the
// wasm Flow says what to do next, and this carries it out: a fetch to the (untrusted) server
// with the session cookie (a JSON body, or a binary one such as a token request's), or a
// passkey ceremony (passkey.ts). It decides nothing; whatever the
// server or the authenticator answers goes back to the flow, which judges it. PRF outputs are
// copied into wasm and wiped here.

import type { Flow } from "../pkg/sotto_web.js";
import { b64uDecode, createPasskey, getPasskey } from "./passkey.js";

interface Options {
  publicKey: Record<string, unknown>;
}

interface HttpStep {
  kind: "http";
  method: string;
  path: string;
  content_type?: string;
  /** A JSON body, as text. */
  body?: string;
  /** Any other body (a token request's), base64url. */
  body_b64u?: string;
}

type Step =
  | HttpStep
  | { kind: "create_passkey"; options: Options; salt_b64u: string; name: string | null }
  | { kind: "get_passkey"; options: Options; salt_b64u: string }
  | { kind: "done" };

/** Largest answer read from the server, as the CLI's: a page of changes is far smaller (the
 *  server bounds pages by size), so anything larger is a hostile or broken server, refused
 *  before it fills the tab's memory. */
const MAX_RESPONSE = 64 * 1024 * 1024;

/** The body of an answer from the server, refused past MAX_RESPONSE bytes. */
export async function boundedBytes(resp: Response): Promise<Uint8Array> {
  const tooLarge = () =>
    new Error(`the server's answer is larger than the ${MAX_RESPONSE} bytes this page reads`);
  if (Number(resp.headers.get("content-length") ?? 0) > MAX_RESPONSE) throw tooLarge();
  if (!resp.body) return new Uint8Array();
  const reader = resp.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > MAX_RESPONSE) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  const all = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  return all;
}

async function send(step: HttpStep): Promise<{ status: number; body: Uint8Array }> {
  const init: RequestInit = { method: step.method, credentials: "same-origin", cache: "no-store" };
  const body = step.body ?? (step.body_b64u === undefined ? undefined : b64uDecode(step.body_b64u));
  if (body !== undefined) {
    init.headers = { "content-type": step.content_type ?? "application/json" };
    init.body = body;
  }
  const resp = await fetch(step.path, init);
  return { status: resp.status, body: await boundedBytes(resp) };
}

async function carry(flow: Flow, step: Exclude<Step, { kind: "done" }>): Promise<string> {
  switch (step.kind) {
    case "http": {
      const { status, body } = await send(step);
      return flow.answer_http(status, body);
    }
    case "create_passkey": {
      const pk = await createPasskey(step.options, b64uDecode(step.salt_b64u));
      try {
        return flow.answer_created(JSON.stringify(pk.credential), pk.credentialId, pk.prf);
      } finally {
        pk.prf.fill(0);
      }
    }
    case "get_passkey": {
      const a = await getPasskey(step.options, b64uDecode(step.salt_b64u));
      try {
        return flow.answer_asserted(
          JSON.stringify(a.credential),
          a.credentialId,
          a.prf ?? undefined,
        );
      } finally {
        a.prf?.fill(0);
      }
    }
  }
}

/** Runs `flow` to its end, hands it to `result` to take what it ended with, and frees it. */
export async function run<T>(flow: Flow, result: (done: Flow) => T | Promise<T>): Promise<T> {
  try {
    let step = JSON.parse(flow.start()) as Step;
    while (step.kind !== "done") step = JSON.parse(await carry(flow, step)) as Step;
    return await result(flow);
  } finally {
    flow.free();
  }
}

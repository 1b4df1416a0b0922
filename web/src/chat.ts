// The attested chat channel: a binary WebSocket to the server's relay (directly, or through an
// independent hop the user chose, which then sees this browser's address instead of the
// server), over which the wasm Channel verifies the enclave's evidence (`finish`), then
// requires a release of the verified transparency log to list the build (`admit`, after
// releaselog.ts ran the log check), before anything is encrypted to it. The relay sees only
// the handshake and ciphertext frames, and, when it requires one, an anonymous token
// (tokens.ts), offered as a WebSocket subprotocol.

import { Channel, type Client, relay_with_enclave } from "../pkg/sotto_web.js";
import { api } from "./api.js";
import { boundedBytes } from "./drive.js";
import type { Role } from "./history.js";
import { checkReleaseLog } from "./releaselog.js";
import { spend } from "./tokens.js";

/** The relay's WebSocket subprotocol, offered beside a token's. */
const RELAY_PROTOCOL = "sotto.relay";

/** Accepting the simulated development platform is a build-time choice (scripts/web); when it
 *  is accepted the page shows a banner that never goes away. */
declare const __ALLOW_SIMULATED__: boolean;

export interface Verified {
  summary: Summary;
  checkedAt: Date;
  /** Channel.finish: the evidence and its binding. */
  finishMs: number;
  /** The release log check in this page (its fetches included) and Channel.admit. */
  logMs: number;
  logFiles: number;
  /** The hop's relay URL, or null when the page reached the server's relay itself. */
  via: string | null;
  /** An anonymous relay token was spent on the connection. */
  tokenSpent: boolean;
}

/** The logged release that admitted the enclave (`sotto_release::Admitted`). */
export interface Admitted {
  name: string;
  version: string;
  source_commit: string;
  index: number;
  digest: string;
  signers: string[];
}

/** The verified release log (`sotto_web::release::LogSummary`). */
export interface LogSummary {
  origin: string;
  size: number;
  root: string;
  previous_size: number | null;
  cosigners: { name: string; timestamp: number }[];
  dev: boolean;
  statements: number;
}

export interface Summary {
  platform: string;
  simulated: boolean;
  simulated_root_pinned: boolean;
  measurement: string;
  release: string;
  /** `sotto_channel::ModelManifest`. */
  model: { name: string; sha256: string; size: number };
  engine: Record<string, unknown>;
  gpu_attested: boolean;
  enclave_static_key: string;
  verdict: Record<string, unknown>;
  admitted: Admitted;
  log: LogSummary;
}

function base64Text(b64: string): string {
  return new TextDecoder().decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
}

export interface Handlers {
  token(piece: string): void;
  done(stats: Record<string, unknown>): void;
  error(message: string): void;
}

/** `relay`, preferring an enclave of the server's pool that this page picked at random (the
 *  wasm picks; see sotto_client::enclaves), so the server does not choose the machine. */
async function pickedEnclave(relay: string): Promise<string> {
  const resp = await fetch("/v1/enclaves", { credentials: "omit", cache: "no-store" });
  const random = crypto.getRandomValues(new Uint32Array(1))[0];
  return relay_with_enclave(relay, resp.status, await boundedBytes(resp), random);
}

export class Connection {
  private handlers: Handlers | null = null;

  private constructor(
    private readonly ws: WebSocket,
    private readonly channel: Channel,
    readonly verified: Verified,
  ) {
    ws.onmessage = (ev) => this.onFrame(new Uint8Array(ev.data as ArrayBuffer));
    ws.onclose = () => this.fail("the connection to the enclave closed");
  }

  /** Opens a channel through the hop `via` (a relay URL, see hop.ts) or the server's
   *  own relay, spending a token of `client`'s when the relay requires one. */
  static async open(client: Client | null, via: string | null): Promise<Connection> {
    const policy: Record<string, unknown> = { allow_simulated: __ALLOW_SIMULATED__ };
    const collateral = (await api.collateral()).files;
    if (__ALLOW_SIMULATED__ && collateral["simulated-root.der"])
      policy.simulated_root = collateral["simulated-root.der"];
    // Handed to the wasm as it is: whether it counts is decided there, at compile time.
    const serverTrust = collateral["trust.json"] ? base64Text(collateral["trust.json"]) : "";
    const token = await spend(client);
    const relay = await pickedEnclave(
      via ?? `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/relay`,
    );
    const channel = new Channel(JSON.stringify(policy));
    const ws = new WebSocket(relay, token.subprotocol ? [RELAY_PROTOCOL, token.subprotocol] : []);
    ws.binaryType = "arraybuffer";
    try {
      const response = await new Promise<Uint8Array>((resolve, reject) => {
        ws.onopen = () => ws.send(channel.hello());
        ws.onmessage = (ev) => resolve(new Uint8Array(ev.data as ArrayBuffer));
        ws.onerror = () =>
          reject(
            new Error(
              via
                ? `cannot reach the enclave through the hop ${via}`
                : "cannot reach the enclave relay" +
                    (token.subprotocol ? " (or it refused the relay token)" : ""),
            ),
          );
        ws.onclose = (ev) =>
          reject(
            new Error(
              `the relay closed before the enclave answered (${ev.code} ${ev.reason}): the ` +
                "enclave may speak an older protocol than this page, or could not attest",
            ),
          );
      });
      const t0 = performance.now();
      channel.finish(response, Date.now() / 1000);
      const finishMs = performance.now() - t0;
      const t1 = performance.now();
      const log = await checkReleaseLog(serverTrust);
      let summary: Summary;
      try {
        summary = JSON.parse(channel.admit(log.check)) as Summary;
      } finally {
        log.check.free();
      }
      const logMs = performance.now() - t1;
      void token.refill();
      return new Connection(ws, channel, {
        summary,
        checkedAt: new Date(),
        finishMs,
        logMs,
        logFiles: log.fetched,
        via,
        tokenSpent: token.subprotocol !== null,
      });
    } catch (e) {
      ws.close();
      channel.free();
      throw e;
    }
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends the whole conversation; the answer streams to `handlers`. */
  send(messages: { role: Role; content: string }[], handlers: Handlers): void {
    if (this.handlers) throw new Error("an answer is still streaming");
    this.handlers = handlers;
    for (const frame of this.channel.seal_chat(JSON.stringify(messages), "")) this.ws.send(frame);
  }

  /** Stops a generation: the enclave stops when its connection goes. */
  close(): void {
    this.ws.onclose = null;
    this.ws.close();
    this.fail("stopped");
  }

  private finishTurn(): Handlers | null {
    const h = this.handlers;
    this.handlers = null;
    return h;
  }

  private fail(message: string): void {
    this.finishTurn()?.error(message);
  }

  private onFrame(frame: Uint8Array): void {
    let event: string | undefined;
    try {
      event = this.channel.open(frame);
    } catch (e) {
      this.ws.onclose = null;
      this.ws.close();
      this.fail(`refused a frame from the enclave: ${(e as Error).message}`);
      return;
    }
    if (event === undefined) return;
    const ev = JSON.parse(event) as {
      token?: string;
      done?: Record<string, unknown>;
      error?: { kind: string; message: string };
    };
    if (ev.token !== undefined) this.handlers?.token(ev.token);
    else if (ev.done) this.finishTurn()?.done(ev.done);
    else if (ev.error) this.finishTurn()?.error(`${ev.error.message} (${ev.error.kind})`);
  }
}

// The attested chat channel: a binary WebSocket to the server's relay, over which the wasm
// Channel verifies the enclave's evidence before anything is encrypted to it. The relay sees
// only the handshake and ciphertext frames.

import { Channel } from "../pkg/sotto_web.js";
import { api } from "./api.js";
import type { Role } from "./history.js";

/** Accepting the simulated development platform is a build-time choice (scripts/web); when it
 *  is accepted the page shows a banner that never goes away. */
declare const __ALLOW_SIMULATED__: boolean;

export interface Verified {
  summary: Summary;
  checkedAt: Date;
  finishMs: number;
}

export interface Summary {
  platform: string;
  simulated: boolean;
  simulated_root_pinned: boolean;
  measurement: string;
  release: string;
  model: Record<string, unknown>;
  engine: Record<string, unknown>;
  gpu_attested: boolean;
  enclave_static_key: string;
  verdict: Record<string, unknown>;
}

export interface Handlers {
  token(piece: string): void;
  done(stats: Record<string, unknown>): void;
  error(message: string): void;
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

  static async open(): Promise<Connection> {
    const policy: Record<string, unknown> = { allow_simulated: __ALLOW_SIMULATED__ };
    if (__ALLOW_SIMULATED__) {
      const root = (await api.collateral()).files["simulated-root.der"];
      if (root) policy.simulated_root = root;
    }
    const channel = new Channel(JSON.stringify(policy));
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/relay`);
    ws.binaryType = "arraybuffer";
    try {
      const response = await new Promise<Uint8Array>((resolve, reject) => {
        ws.onopen = () => ws.send(channel.hello());
        ws.onmessage = (ev) => resolve(new Uint8Array(ev.data as ArrayBuffer));
        ws.onerror = () => reject(new Error("cannot reach the enclave relay"));
        ws.onclose = (ev) => reject(new Error(`the relay closed before the enclave answered (${ev.code} ${ev.reason})`));
      });
      const t0 = performance.now();
      const summary = JSON.parse(channel.finish(response, Date.now() / 1000)) as Summary;
      const finishMs = performance.now() - t0;
      return new Connection(ws, channel, { summary, checkedAt: new Date(), finishMs });
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
    const ev = JSON.parse(event) as { token?: string; done?: Record<string, unknown>; error?: { kind: string; message: string } };
    if (ev.token !== undefined) this.handlers?.token(ev.token);
    else if (ev.done) this.finishTurn()?.done(ev.done);
    else if (ev.error) this.finishTurn()?.error(`${ev.error.message} (${ev.error.kind})`);
  }
}

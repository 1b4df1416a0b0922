// The anonymous relay tokens (Privacy Pass, docs/TOKENS.md) this page spends, one per relay
// connection when the relay requires them. The wasm RelayTokens reads the relay's policy and
// keeps the wallet, and the batch is fetched by the client core's flow (the CLI's own code);
// this file fetches the policy, carries the flow out with the session cookie (drive.ts) and
// stores the wallet in IndexedDB (idb.ts). Each change to the wallet is one read-write
// transaction, so two tabs never take the same token. The batch is fetched after a connection
// rather than just before the next one whenever the wallet allows, so a token's issuance and
// its use lie apart in time.

import { RelayTokens, type Client } from "../pkg/sotto_web.js";
import { boundedBytes, run } from "./drive.js";
import { TOKENS, committed, request, store } from "./idb.js";

const WALLET = "wallet";

interface Policy {
  status: number;
  body: Uint8Array;
}

/** The relay's policy, asked without the cookie: it is the same for everyone. */
async function policy(): Promise<Policy> {
  const resp = await fetch("/v1/tokens", { credentials: "omit", cache: "no-store" });
  return { status: resp.status, body: await boundedBytes(resp) };
}

/** Runs `f` over the stored wallet in one read-write transaction, and stores what it leaves. */
async function withWallet<T>(p: Policy, f: (t: RelayTokens) => T): Promise<T> {
  const s = await store(TOKENS, "readwrite");
  const done = committed(s);
  const stored: unknown = await request(s.get(WALLET));
  const t = new RelayTokens(p.status, p.body, typeof stored === "string" ? stored : "");
  try {
    const out = f(t);
    s.put(t.wallet_json(), WALLET);
    await done;
    return out;
  } finally {
    t.free();
  }
}

/** Fetches a batch with `client`'s session into the stored wallet. */
async function fill(p: Policy, client: Client): Promise<void> {
  const fetcher = new RelayTokens(p.status, p.body, "");
  try {
    await run(fetcher.fetch(client), (done) => withWallet(p, (t) => t.add(done)));
  } finally {
    fetcher.free();
  }
}

export interface Spent {
  /** The WebSocket subprotocol carrying the token, or null when the relay requires none. */
  subprotocol: string | null;
  /** After the connection: refills the wallet when it runs low. A failure only costs a later
   *  refill. */
  refill(): Promise<void>;
}

/** Takes the token for the next relay connection out of the stored wallet, fetching a batch
 *  first if it has none (which needs `client`, a signed-in client). */
export async function spend(client: Client | null): Promise<Spent> {
  const p = await policy();
  const take = (t: RelayTokens) => (t.required() ? (t.take_subprotocol() ?? "") : null);
  let subprotocol = await withWallet(p, take);
  if (subprotocol === "") {
    if (!client)
      throw new Error(
        "this server's relay requires a token for each connection, and tokens are issued to " +
          "signed-in accounts: sign in first",
      );
    await fill(p, client);
    subprotocol = await withWallet(p, take);
    if (subprotocol === "") throw new Error("the token issuer gave no usable token");
  }
  return {
    subprotocol,
    refill: async () => {
      try {
        if (subprotocol !== null && client && (await withWallet(p, (t) => t.wants_refill())))
          await fill(p, client);
      } catch {
        // The next connection fetches a batch itself if the wallet is empty by then.
      }
    },
  };
}

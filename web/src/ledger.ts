// The rollback ledger's home in this browser: IndexedDB (idb.ts), one entry per account. The
// ledger holds record ids and versions only (the server knows both), so it is not secret; it
// lets the vault refuse a server that serves an older copy of a record than this browser has
// seen. Wiping the site's data forgets it, like a new device.

import { LEDGERS, committed, request, store } from "./idb.js";

/** The ledger JSON saved for `account`, or null on a browser that never opened it. */
export async function loadLedger(account: string): Promise<string | null> {
  const v: unknown = await request((await store(LEDGERS, "readonly")).get(account));
  return typeof v === "string" ? v : null;
}

/** Forgets the ledger of a deleted account. */
export async function forgetLedger(account: string): Promise<void> {
  const s = await store(LEDGERS, "readwrite");
  await request(s.delete(account));
}

export async function saveLedger(account: string, ledgerJson: string): Promise<void> {
  const s = await store(LEDGERS, "readwrite");
  // Resolves on commit, not on the request's success, so the ledger is on disk afterwards.
  const done = committed(s);
  s.put(ledgerJson, account);
  await done;
}

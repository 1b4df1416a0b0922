// The rollback ledger's home in this browser: IndexedDB, one entry per account. The ledger
// holds record ids and versions only (the server knows both), so it is not secret; it lets the
// vault refuse a server that serves an older copy of a record than this browser has seen.
// Wiping the site's data forgets it, like a new device.

const DB = "sotto";
const STORE = "ledgers";

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error ?? new Error("IndexedDB request failed"));
  });
}

let db: Promise<IDBDatabase> | null = null;

function open(): Promise<IDBDatabase> {
  db ??= new Promise((resolve, reject) => {
    const r = indexedDB.open(DB, 1);
    r.onupgradeneeded = () => r.result.createObjectStore(STORE);
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error ?? new Error("cannot open this browser's IndexedDB"));
    r.onblocked = () => reject(new Error("IndexedDB is blocked by another Sotto tab"));
  });
  return db;
}

async function store(mode: IDBTransactionMode): Promise<IDBObjectStore> {
  return (await open()).transaction(STORE, mode).objectStore(STORE);
}

/** The ledger JSON saved for `account`, or null on a browser that never opened it. */
export async function loadLedger(account: string): Promise<string | null> {
  const v = await request((await store("readonly")).get(account));
  return typeof v === "string" ? v : null;
}

/** Forgets the ledger of a deleted account. */
export async function forgetLedger(account: string): Promise<void> {
  const s = await store("readwrite");
  await request(s.delete(account));
}

export async function saveLedger(account: string, ledgerJson: string): Promise<void> {
  const s = await store("readwrite");
  // Resolves on commit, not on the request's success, so the ledger is on disk afterwards.
  const committed = new Promise<void>((resolve, reject) => {
    s.transaction.oncomplete = () => resolve();
    s.transaction.onerror = () => reject(s.transaction.error ?? new Error("IndexedDB write failed"));
    s.transaction.onabort = () => reject(s.transaction.error ?? new Error("IndexedDB write aborted"));
  });
  s.put(ledgerJson, account);
  await committed;
}

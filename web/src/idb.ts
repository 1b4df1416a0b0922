// This browser's IndexedDB database "sotto": one object store per kind of local memory, none of
// it secret (the server knows all of it), all of it there to catch a server that goes back on
// what this browser saw, and the anonymous relay tokens it has not spent yet. Version 1 had
// only "ledgers"; version 2 adds "logs", version 3 "tokens", and the upgrade creates whichever
// store is missing, so an existing database keeps what it holds.
//   ledgers  the rollback ledger per account (ledger.ts)
//   logs     the release log's verified tree per log origin (logstate.ts)
//   tokens   the wallet of unspent relay tokens (tokens.ts): bearer tokens that name nobody

const DB = "sotto";
const VERSION = 3;
export const LEDGERS = "ledgers";
export const LOGS = "logs";
export const TOKENS = "tokens";

export function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error ?? new Error("IndexedDB request failed"));
  });
}

let db: Promise<IDBDatabase> | null = null;

function open(): Promise<IDBDatabase> {
  db ??= new Promise((resolve, reject) => {
    const r = indexedDB.open(DB, VERSION);
    r.onupgradeneeded = () => {
      for (const name of [LEDGERS, LOGS, TOKENS]) {
        if (!r.result.objectStoreNames.contains(name)) r.result.createObjectStore(name);
      }
    };
    r.onsuccess = () => {
      // Another tab upgrading the database asks this one to let go; the next use reopens it.
      r.result.onversionchange = () => {
        r.result.close();
        db = null;
      };
      resolve(r.result);
    };
    r.onerror = () => {
      db = null;
      reject(r.error ?? new Error("cannot open this browser's IndexedDB"));
    };
    r.onblocked = () => {
      db = null;
      reject(new Error("IndexedDB is blocked by another Sotto tab"));
    };
  });
  return db;
}

export async function store(name: string, mode: IDBTransactionMode): Promise<IDBObjectStore> {
  return (await open()).transaction(name, mode).objectStore(name);
}

/** Resolves when the store's transaction has committed (so what it wrote is on disk). */
export function committed(s: IDBObjectStore): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    s.transaction.oncomplete = () => resolve();
    s.transaction.onerror = () =>
      reject(s.transaction.error ?? new Error("IndexedDB write failed"));
    s.transaction.onabort = () =>
      reject(s.transaction.error ?? new Error("IndexedDB write aborted"));
  });
}

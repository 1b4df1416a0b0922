// The release log's memory in this browser: IndexedDB (idb.ts), one entry per log origin, the
// `sotto-log-state/v1` JSON the wasm LogCheck returned after its last successful check (the
// tree it verified, with every entry). It is not secret; it is what makes a log that rolls
// back or shows this browser another tree (a split view) stand out, which the wasm judges.
// Wiping the site's data forgets it, like a new device.

import { LOGS, committed, request, store } from "./idb.js";

/** The state stored for the log `origin`, or "" when this browser never checked it. */
export async function loadLogState(origin: string): Promise<string> {
  const v: unknown = await request((await store(LOGS, "readonly")).get(origin));
  return typeof v === "string" ? v : "";
}

/** Stores a verified tree of `size` entries, unless another tab stored a larger one meanwhile
 *  (the larger memory is kept, as the CLI does). Resolves once it is on disk. */
export async function saveLogState(origin: string, stateJson: string, size: number): Promise<void> {
  const s = await store(LOGS, "readwrite");
  const done = committed(s);
  const stored: unknown = await request(s.get(origin));
  let storedSize = -1;
  try {
    if (typeof stored === "string")
      storedSize = Number((JSON.parse(stored) as { size?: unknown }).size);
  } catch {
    // An unreadable record is replaced.
  }
  if (!(storedSize > size)) s.put(stateJson, origin);
  await done;
}

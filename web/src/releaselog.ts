// The release transparency log check, as I/O only: the wasm LogCheck (sotto_release::LogSync)
// says which files of the server's log (/log/) it needs and judges their bytes; this module
// fetches exactly those, hands them back, and keeps the verified tree in IndexedDB for the
// next check. Which trust configuration applies is the wasm's decision (compiled in), never
// this module's or the server's.

import { LogCheck } from "../pkg/sotto_web.js";
import { loadLogState, saveLogState } from "./logstate.js";

const LOG_PREFIX = "/log/";
/** Larger than any file of a log this client reads (the wasm bounds the tree too). */
const MAX_FILE = 16 << 20;

export interface LogChecked {
  /** The finished check, holding the verified releases for Channel.admit. */
  check: LogCheck;
  /** How long the check took in this page (fetches included). */
  ms: number;
  /** How many files were fetched. */
  fetched: number;
}

async function fetchLogFile(path: string): Promise<Uint8Array> {
  let resp: Response;
  try {
    resp = await fetch(LOG_PREFIX + path, { credentials: "omit", cache: "no-store" });
  } catch (e) {
    throw new Error(`cannot fetch the release log's ${path}: ${(e as Error).message}`);
  }
  if (!resp.ok)
    throw new Error(`cannot fetch the release log's ${path}: the server answered ${resp.status}`);
  const body = new Uint8Array(await resp.arrayBuffer());
  if (body.length > MAX_FILE)
    throw new Error(`cannot fetch the release log's ${path}: larger than a log file may be`);
  return body;
}

/** Checks the server's release log against this build's trust configuration (`serverTrust`:
 *  the server's trust.json, which only a development build may use, and only if it is a dev
 *  configuration). Throws with the refusal; on success the new tree is stored. */
export async function checkReleaseLog(serverTrust: string): Promise<LogChecked> {
  const t0 = performance.now();
  const origin = LogCheck.origin_for(serverTrust);
  const check = new LogCheck(serverTrust, await loadLogState(origin), Date.now() / 1000);
  let fetched = 0;
  try {
    for (;;) {
      const wanted = JSON.parse(check.wanted()) as string[];
      if (wanted.length === 0) break;
      const bodies = await Promise.all(wanted.map(fetchLogFile));
      wanted.forEach((path, i) => check.give(path, bodies[i]));
      fetched += wanted.length;
    }
    const done = JSON.parse(check.finish()) as { state: string; origin: string; size: number };
    await saveLogState(done.origin, done.state, done.size);
  } catch (e) {
    check.free();
    throw e;
  }
  return { check, ms: performance.now() - t0, fetched };
}

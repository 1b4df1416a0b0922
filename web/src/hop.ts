// The independent hop this browser reaches the enclave through (`sotto hop`, run by someone
// else), if the user chose one: the server then sees the hop's address instead of this
// browser's, and being another site, the hop gets none of this site's cookies. A preference,
// not a secret, so it lives in localStorage.

const KEY = "sotto.hop";

/** The relay URL of a hop the user typed: an `http(s)://` or `ws(s)://` address, with the
 *  relay's path added when it has none (as `sotto chat --via`). Throws a readable error. */
function hopRelayUrl(typed: string): string {
  let url: URL;
  try {
    url = new URL(typed);
  } catch {
    throw new Error(`the hop address ${JSON.stringify(typed)} is not a URL`);
  }
  const schemes: Record<string, string> = {
    "http:": "ws:",
    "https:": "wss:",
    "ws:": "ws:",
    "wss:": "wss:",
  };
  const scheme = schemes[url.protocol];
  if (!scheme)
    throw new Error(`the hop address must start with https:// or wss://, not ${url.protocol}`);
  url.protocol = scheme;
  if (url.pathname === "/" || url.pathname === "") url.pathname = "/v1/relay";
  return url.toString();
}

/** The chosen hop's relay URL, or null for this server's own relay. */
export function savedHop(): string | null {
  return localStorage.getItem(KEY) || null;
}

/** Saves what the user typed (empty: no hop) and returns the relay URL now in use. */
export function saveHop(typed: string): string | null {
  const trimmed = typed.trim();
  if (!trimmed) {
    localStorage.removeItem(KEY);
    return null;
  }
  const url = hopRelayUrl(trimmed);
  localStorage.setItem(KEY, url);
  return url;
}

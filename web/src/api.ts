// The HTTP API of the (untrusted) server, as the browser calls it. Every body sent through here
// is public (WebAuthn responses without PRF results, recovery lookup values) or ciphertext made
// by the wasm vault; the session lives in an HttpOnly cookie the page never sees.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly currentVersion?: number,
  ) {
    super(message);
  }
}

interface ErrorBody {
  error?: unknown;
  message?: unknown;
  current_version?: unknown;
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    init.headers = { "content-type": "application/json" };
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  const text = await resp.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ApiError(resp.status, "malformed", `the server answered ${resp.status} with a body that is not Sotto's API`);
  }
  if (!resp.ok) {
    const e = (parsed ?? {}) as ErrorBody;
    throw new ApiError(
      resp.status,
      typeof e.error === "string" ? e.error : "malformed",
      typeof e.message === "string" ? e.message : `the server answered ${resp.status}`,
      typeof e.current_version === "number" ? e.current_version : undefined,
    );
  }
  return parsed as T;
}

export interface CeremonyStarted {
  ceremony_id: string;
  options: { publicKey: Record<string, unknown> };
}

export interface SessionGranted {
  account_id: string;
  credential_id?: string;
}

/** A record as the server serves it (`sotto_api::RecordOut`). */
export interface RecordOut {
  id: string;
  group?: string;
  kind: string;
  version: number;
  seq: number;
  ciphertext?: string;
}

interface Changes {
  records: RecordOut[];
  next: number;
  more: boolean;
}

export interface PasskeyInfo {
  credential_id: string;
  name: string;
  created_at: number;
  last_used_at?: number | null;
}

interface AccountInfo {
  account_id: string;
  created_at: number;
  passkeys: PasskeyInfo[];
}

/** What the wasm vault returns for a write: the id and the `PUT /v1/records/{id}` body. */
export interface Sealed {
  id: string;
  conv?: string;
  msg?: string;
  put: unknown;
}

export const api = {
  registerStart: (displayName: string) =>
    call<CeremonyStarted>("POST", "/v1/account/register/start", { display_name: displayName }),
  registerFinish: (body: unknown) => call<SessionGranted>("POST", "/v1/account/register/finish", body),
  signInStart: () => call<CeremonyStarted>("POST", "/v1/session/start"),
  signInFinish: (body: unknown) => call<SessionGranted>("POST", "/v1/session/finish", body),
  recover: (body: unknown) => call<SessionGranted>("POST", "/v1/session/recover", body),
  signOut: () => call<unknown>("DELETE", "/v1/session"),
  addPasskeyStart: () => call<CeremonyStarted>("POST", "/v1/account/passkeys/start"),
  addPasskeyFinish: (body: unknown) => call<unknown>("POST", "/v1/account/passkeys/finish", body),
  account: () => call<AccountInfo>("GET", "/v1/account"),
  removePasskey: (credentialId: string) => call<unknown>("DELETE", `/v1/account/passkeys/${encodeURIComponent(credentialId)}`),
  setRecovery: (verifier: unknown) => call<unknown>("PUT", "/v1/account/recovery", verifier),
  deleteAccount: () => call<unknown>("DELETE", "/v1/account"),
  get: (id: string) => call<RecordOut>("GET", `/v1/records/${encodeURIComponent(id)}`),
  /** The record, or null when the server has none by that id. */
  async find(id: string): Promise<RecordOut | null> {
    try {
      return await api.get(id);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return null;
      throw e;
    }
  },
  put: (sealedJson: string) => {
    const s = JSON.parse(sealedJson) as Sealed;
    return call<{ version: number; seq: number }>("PUT", `/v1/records/${encodeURIComponent(s.id)}`, s.put);
  },
  deleteRecord: (id: string) => call<{ deleted: number }>("DELETE", `/v1/records/${encodeURIComponent(id)}`),
  deleteGroup: (group: string) => call<{ deleted: number }>("DELETE", `/v1/groups/${encodeURIComponent(group)}`),
  /** Every change after `since`, following pages, and where the next call starts. */
  async changes(since: number): Promise<{ records: RecordOut[]; next: number }> {
    const records: RecordOut[] = [];
    for (;;) {
      const page = await call<Changes>("GET", `/v1/records?since=${since}&limit=1000`);
      records.push(...page.records);
      since = page.next;
      if (!page.more) return { records, next: since };
    }
  },
  collateral: () => call<{ files: Record<string, string> }>("GET", "/v1/collateral"),
};

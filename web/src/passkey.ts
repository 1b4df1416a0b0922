// WebAuthn in the browser: the server's JSON options become the ArrayBuffers the browser wants,
// PRF evaluation is requested with Sotto's salt, and the responses go back as WebAuthn JSON
// WITHOUT any PRF result: the PRF output is the key-encryption key's input and never leaves the
// page.

export function b64uEncode(bytes: ArrayBuffer | Uint8Array): string {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let bin = "";
  for (const b of u8) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function b64uDecode(text: string): Uint8Array<ArrayBuffer> {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** The passkey or the browser cannot evaluate PRF, so it cannot unlock a vault. */
export class NoPrfError extends Error {
  constructor() {
    super(
      "This passkey or browser does not support the PRF extension, which Sotto needs to unlock " +
        "your encrypted history with a passkey. Use a passkey provider that supports PRF, or " +
        "unlock with your recovery code.",
    );
  }
}

type Json = Record<string, unknown>;

function descriptors(list: unknown): PublicKeyCredentialDescriptor[] {
  if (!Array.isArray(list)) return [];
  return list.map(
    (c: Json) =>
      ({ ...c, id: b64uDecode(String(c.id)) }) as unknown as PublicKeyCredentialDescriptor,
  );
}

function prfOf(cred: PublicKeyCredential): Uint8Array | null {
  const ext = cred.getClientExtensionResults() as { prf?: { results?: { first?: BufferSource } } };
  const first = ext.prf?.results?.first;
  if (!first) return null;
  const bytes =
    first instanceof ArrayBuffer
      ? new Uint8Array(first)
      : new Uint8Array(first.buffer, first.byteOffset, first.byteLength);
  return new Uint8Array(bytes);
}

/** Client extension results minus PRF: only `credProps` is worth telling the server. */
function publicExtensions(cred: PublicKeyCredential): Json {
  const ext = cred.getClientExtensionResults() as Json;
  return ext.credProps ? { credProps: ext.credProps } : {};
}

export interface NewPasskey {
  credential: Json;
  credentialId: Uint8Array;
  prf: Uint8Array;
}

/** Creates a passkey for the server's options and evaluates its PRF (at creation when the
 *  authenticator supports it, else with a local follow-up assertion). Throws NoPrfError before
 *  anything is sent when neither yields a PRF output. */
export async function createPasskey(
  options: { publicKey: Json },
  salt: Uint8Array<ArrayBuffer>,
): Promise<NewPasskey> {
  const pk = options.publicKey;
  const user = pk.user as Json;
  const publicKey = {
    ...pk,
    challenge: b64uDecode(String(pk.challenge)),
    user: { ...user, id: b64uDecode(String(user.id)) },
    excludeCredentials: descriptors(pk.excludeCredentials),
    extensions: { ...((pk.extensions as Json) ?? {}), prf: { eval: { first: salt } } },
  } as unknown as PublicKeyCredentialCreationOptions;
  const cred = (await navigator.credentials.create({ publicKey })) as PublicKeyCredential | null;
  if (!cred) throw new Error("the browser created no passkey");
  const rawId = new Uint8Array(cred.rawId);
  const rp = pk.rp as Json | undefined;
  const rpId = typeof rp?.id === "string" ? rp.id : location.hostname;
  const prf = prfOf(cred) ?? (await evaluatePrf(rpId, rawId, salt));
  if (!prf) throw new NoPrfError();
  const r = cred.response as AuthenticatorAttestationResponse;
  const response: Json = {
    attestationObject: b64uEncode(r.attestationObject),
    clientDataJSON: b64uEncode(r.clientDataJSON),
    transports: typeof r.getTransports === "function" ? r.getTransports() : [],
  };
  const credential: Json = {
    id: cred.id,
    rawId: b64uEncode(rawId),
    type: cred.type,
    response,
    clientExtensionResults: publicExtensions(cred),
  };
  if (cred.authenticatorAttachment)
    credential.authenticatorAttachment = cred.authenticatorAttachment;
  return { credential, credentialId: rawId, prf };
}

/** A local assertion only to evaluate PRF: its challenge is ours and it is never sent. */
async function evaluatePrf(
  rpId: string,
  credentialId: Uint8Array<ArrayBuffer>,
  salt: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array | null> {
  const publicKey = {
    challenge: crypto.getRandomValues(new Uint8Array(32)),
    rpId,
    allowCredentials: [{ type: "public-key", id: credentialId }],
    userVerification: "required",
    extensions: { prf: { eval: { first: salt } } },
  } as unknown as PublicKeyCredentialRequestOptions;
  const cred = (await navigator.credentials.get({ publicKey })) as PublicKeyCredential | null;
  return cred ? prfOf(cred) : null;
}

export interface Assertion {
  credential: Json;
  credentialId: Uint8Array;
  /** Null when the passkey gave no PRF output: the vault then needs the recovery code. */
  prf: Uint8Array | null;
}

/** A discoverable sign-in: the authenticator picks the account. */
export async function getPasskey(
  options: { publicKey: Json },
  salt: Uint8Array<ArrayBuffer>,
): Promise<Assertion> {
  const pk = options.publicKey;
  const publicKey = {
    ...pk,
    challenge: b64uDecode(String(pk.challenge)),
    allowCredentials: descriptors(pk.allowCredentials),
    extensions: { ...((pk.extensions as Json) ?? {}), prf: { eval: { first: salt } } },
  } as unknown as PublicKeyCredentialRequestOptions;
  const cred = (await navigator.credentials.get({ publicKey })) as PublicKeyCredential | null;
  if (!cred) throw new Error("the browser returned no passkey");
  const r = cred.response as AuthenticatorAssertionResponse;
  const response: Json = {
    clientDataJSON: b64uEncode(r.clientDataJSON),
    authenticatorData: b64uEncode(r.authenticatorData),
    signature: b64uEncode(r.signature),
  };
  if (r.userHandle) response.userHandle = b64uEncode(r.userHandle);
  const credential: Json = {
    id: cred.id,
    rawId: b64uEncode(cred.rawId),
    type: cred.type,
    response,
    clientExtensionResults: {},
  };
  if (cred.authenticatorAttachment)
    credential.authenticatorAttachment = cred.authenticatorAttachment;
  return { credential, credentialId: new Uint8Array(cred.rawId), prf: prfOf(cred) };
}

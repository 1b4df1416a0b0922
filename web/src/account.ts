// Account flows, the same as the CLI's (crates/cli/src/account.rs): sign-up, passkey sign-in,
// recovery on a new device (which registers this device's own passkey). Keys are derived and
// vaults opened only inside the wasm core; what is sent is public or ciphertext.

import { Recovery, Vault, passkey_wrap_id, prf_salt, recovery_wrap_id } from "../pkg/sotto_web.js";
import { type PasskeyInfo, api } from "./api.js";
import { forgetLedger, loadLedger, saveLedger as storeLedger } from "./ledger.js";
import { b64uEncode, createPasskey, getPasskey, NoPrfError } from "./passkey.js";

/** The passkey this page signed in (or signed up) with, base64url, to mark it in the list. */
let signedInWith: string | null = null;
export function thisPasskey(): string | null {
  return signedInWith;
}

/** A name for a new passkey that tells the user's devices apart, e.g. "Chrome on Linux". */
export function deviceName(): string {
  const ua = navigator.userAgent;
  const browser = /Edg\//.test(ua) ? "Edge" : /Firefox\//.test(ua) ? "Firefox" : /Chrome\//.test(ua) ? "Chrome" : /Safari\//.test(ua) ? "Safari" : "Browser";
  const hints = (navigator as { userAgentData?: { platform?: string } }).userAgentData;
  const platform = hints?.platform || (/Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS" : /Mac/.test(ua) ? "macOS" : /Windows/.test(ua) ? "Windows" : /Linux/.test(ua) ? "Linux" : "");
  return platform ? `${browser} on ${platform}` : browser;
}

function salt(): Uint8Array<ArrayBuffer> {
  return new Uint8Array(prf_salt());
}

/** Continues from the rollback ledger this browser saved for the account, if any. */
async function restoreLedger(vault: Vault): Promise<void> {
  const saved = await loadLedger(vault.account());
  if (saved) vault.restore_ledger(saved);
}

export async function saveLedger(vault: Vault): Promise<void> {
  await storeLedger(vault.account(), vault.ledger_json());
}

async function wrapRecord(id: string): Promise<string> {
  return JSON.stringify(await api.get(id));
}

async function unlockWithPrf(account: string, prf: Uint8Array, credentialId: Uint8Array): Promise<Vault> {
  const record = await wrapRecord(passkey_wrap_id(credentialId));
  const vault = Vault.unlock_with_prf(account, prf, credentialId, record);
  await restoreLedger(vault);
  return vault;
}

export interface SignedUp {
  vault: Vault;
  /** The new recovery code's text, to show exactly once. */
  recoveryCode: string;
}

export async function signUp(displayName: string, passkeyName: string): Promise<SignedUp> {
  const recovery = Recovery.generate();
  try {
    const started = await api.registerStart(displayName);
    const pk = await createPasskey(started.options, salt());
    try {
      const granted = await api.registerFinish({
        ceremony_id: started.ceremony_id,
        credential: pk.credential,
        passkey_name: passkeyName,
        recovery: JSON.parse(recovery.verifier_json()),
      });
      const account = granted.account_id;
      const fresh = Vault.create(account);
      await api.put(fresh.wrap_for_prf(pk.prf, pk.credentialId, 0));
      await api.put(fresh.wrap_for_recovery(recovery, 0));
      fresh.free();
      // Re-open our own wrapping the normal way, so a broken server is caught now.
      const vault = await unlockWithPrf(account, pk.prf, pk.credentialId);
      signedInWith = b64uEncode(pk.credentialId);
      return { vault, recoveryCode: recovery.reveal() };
    } finally {
      pk.prf.fill(0);
    }
  } finally {
    recovery.free();
  }
}

/** A signed-in session whose passkey gave no PRF output: only the recovery code can unlock. */
export class LockedSession extends Error {
  constructor(readonly account: string) {
    super(new NoPrfError().message);
  }
}

export async function signIn(): Promise<Vault> {
  const started = await api.signInStart();
  const a = await getPasskey(started.options, salt());
  const granted = await api.signInFinish({ ceremony_id: started.ceremony_id, credential: a.credential });
  signedInWith = b64uEncode(a.credentialId);
  if (!a.prf) throw new LockedSession(granted.account_id);
  try {
    return await unlockWithPrf(granted.account_id, a.prf, a.credentialId);
  } finally {
    a.prf.fill(0);
  }
}

/** Opens the vault of an already signed-in session with the recovery code. */
export async function unlockWithRecovery(account: string, codeText: string): Promise<Vault> {
  const recovery = Recovery.parse(codeText);
  try {
    const vault = Vault.unlock_with_recovery(account, recovery, await wrapRecord(recovery_wrap_id()));
    await restoreLedger(vault);
    return vault;
  } finally {
    recovery.free();
  }
}

/** A new device: signs in with the recovery code, opens the vault with it, then registers a
 *  passkey on this device and wraps the vault key for it. */
export async function recover(codeText: string, passkeyName: string): Promise<Vault> {
  // Typos are caught by the checksum before anything is sent.
  const recovery = Recovery.parse(codeText);
  let vault: Vault;
  try {
    const granted = await api.recover(JSON.parse(recovery.sign_in_json()));
    vault = Vault.unlock_with_recovery(granted.account_id, recovery, await wrapRecord(recovery_wrap_id()));
  } finally {
    recovery.free();
  }
  await restoreLedger(vault);
  signedInWith = b64uEncode(await addPasskey(vault, passkeyName));
  return vault;
}

/** Registers another passkey for the unlocked account and wraps the vault key for it. */
export async function addPasskey(vault: Vault, passkeyName: string): Promise<Uint8Array> {
  const started = await api.addPasskeyStart();
  const pk = await createPasskey(started.options, salt());
  try {
    await api.addPasskeyFinish({ ceremony_id: started.ceremony_id, credential: pk.credential, passkey_name: passkeyName });
    await api.put(vault.wrap_for_prf(pk.prf, pk.credentialId, 0));
    return pk.credentialId;
  } finally {
    pk.prf.fill(0);
  }
}

export type { PasskeyInfo } from "./api.js";

export async function listPasskeys(): Promise<PasskeyInfo[]> {
  return (await api.account()).passkeys;
}

/** Removes a passkey; the server refuses to remove the last one and drops its vault wrapping. */
export async function removePasskey(credentialId: string): Promise<void> {
  await api.removePasskey(credentialId);
}

/** Replaces the recovery code, as the CLI does: the vault key is wrapped for the new code
 *  first, then the server's verifier changes, so whichever code can sign in can also unlock.
 *  Returns the new code's text, to show once. */
export async function rotateRecovery(vault: Vault): Promise<string> {
  const recovery = Recovery.generate();
  try {
    const current = (await api.find(recovery_wrap_id()))?.version ?? 0;
    await api.put(vault.wrap_for_recovery(recovery, current));
    await api.setRecovery(JSON.parse(recovery.verifier_json()));
    return recovery.reveal();
  } finally {
    recovery.free();
  }
}

/** Deletes the account and everything in it on the server, and this browser's ledger of it. */
export async function deleteAccount(vault: Vault): Promise<void> {
  await api.deleteAccount();
  await forgetLedger(vault.account());
}

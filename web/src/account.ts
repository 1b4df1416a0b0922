// Account flows: sign-up, passkey sign-in, unlocking with the recovery code, recovery on a new
// device, passkeys, a new recovery code, account deletion. Each is the client core's flow (the
// CLI's, crates/client) run by drive.ts; this file adds only this browser's storage of the
// rollback ledger (ledger.ts) around them.

import { type Client, Flow, type Locked } from "../pkg/sotto_web.js";
import { run } from "./drive.js";
import { forgetLedger, loadLedger, saveLedger as storeLedger } from "./ledger.js";
import { NoPrfError } from "./passkey.js";

/** A name for a new passkey that tells the user's devices apart, e.g. "Chrome on Linux". */
export function deviceName(): string {
  const ua = navigator.userAgent;
  const browser = /Edg\//.test(ua)
    ? "Edge"
    : /Firefox\//.test(ua)
      ? "Firefox"
      : /Chrome\//.test(ua)
        ? "Chrome"
        : /Safari\//.test(ua)
          ? "Safari"
          : "Browser";
  const hints = (navigator as { userAgentData?: { platform?: string } }).userAgentData;
  const platform =
    hints?.platform ||
    (/Android/.test(ua)
      ? "Android"
      : /iPhone|iPad/.test(ua)
        ? "iOS"
        : /Mac/.test(ua)
          ? "macOS"
          : /Windows/.test(ua)
            ? "Windows"
            : /Linux/.test(ua)
              ? "Linux"
              : "");
  return platform ? `${browser} on ${platform}` : browser;
}

export async function saveLedger(client: Client): Promise<void> {
  await storeLedger(client.account(), client.ledger_json());
}

/** The client a flow ended with, continuing from the rollback ledger this browser saved for
 *  the account, if any. */
async function unlocked(flow: Flow): Promise<Client> {
  const client = flow.client();
  try {
    const saved = await loadLedger(client.account());
    if (saved) client.restore_ledger(saved);
    return client;
  } catch (e) {
    client.free();
    throw e;
  }
}

export interface SignedUp {
  client: Client;
  /** The new recovery code's text, to show exactly once. */
  recoveryCode: string;
}

export async function signUp(displayName: string, passkeyName: string): Promise<SignedUp> {
  return run(Flow.sign_up(displayName, passkeyName), async (done) => {
    const recoveryCode = done.recovery_code();
    return { client: await unlocked(done), recoveryCode };
  });
}

/** A signed-in session whose passkey gave no PRF output: only the recovery code can unlock. */
export class LockedSession extends Error {
  constructor(readonly locked: Locked) {
    super(new NoPrfError().message);
  }
}

export async function signIn(): Promise<Client> {
  return run(Flow.sign_in(), (done) => {
    const locked = done.locked();
    if (locked) throw new LockedSession(locked);
    return unlocked(done);
  });
}

/** Opens the vault of a locked session with the recovery code. */
export async function unlockWithRecovery(locked: Locked, codeText: string): Promise<Client> {
  return run(Flow.unlock_with_recovery(locked, codeText), unlocked);
}

/** A new device: signs in with the recovery code (a typo is caught before anything is sent),
 *  and registers a passkey on this device with the vault key wrapped for it. */
export async function recover(codeText: string, passkeyName: string): Promise<Client> {
  return run(Flow.recover(codeText, passkeyName), unlocked);
}

/** Registers another passkey for the unlocked account and wraps the vault key for it. */
export async function addPasskey(client: Client, passkeyName: string): Promise<void> {
  await run(client.add_passkey(passkeyName), () => undefined);
}

export interface PasskeyInfo {
  /** base64url, as `Client.credential_id()` gives the one signed in with. */
  credential_id: string;
  name: string;
  created_at: number;
  last_used_at?: number | null;
}

export async function listPasskeys(client: Client): Promise<PasskeyInfo[]> {
  return run(
    client.account_info(),
    (done) => (JSON.parse(done.account_json()) as { passkeys: PasskeyInfo[] }).passkeys,
  );
}

/** Removes a passkey; the server refuses to remove the last one and drops its vault wrapping. */
export async function removePasskey(client: Client, credentialId: string): Promise<void> {
  await run(client.remove_passkey(credentialId), () => undefined);
}

/** Replaces the recovery code; returns the new code's text, to show once. */
export async function rotateRecovery(client: Client): Promise<string> {
  return run(client.rotate_recovery(), (done) => done.recovery_code());
}

export async function signOut(client: Client): Promise<void> {
  await run(client.sign_out(), () => undefined);
}

/** Deletes the account and everything in it on the server, and this browser's ledger of it. */
export async function deleteAccount(client: Client): Promise<void> {
  await run(client.delete_account(), () => undefined);
  await forgetLedger(client.account());
}

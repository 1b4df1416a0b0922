//! The client core: every flow a Sotto client runs against the account server, written once.
//!
//! Sign-up, passkey sign-in and unlock, recovery sign-in and re-enrolment, the passkey
//! confirmation (step-up) that adding or removing a passkey, rotating the recovery code and
//! deleting the account begin with, the history fold over the change feed and header edits with
//! merge-and-retry, and fetching anonymous relay tokens (Privacy Pass) into a wallet, are state
//! machines here. Each takes the server's (or the authenticator's) answer and returns the next
//! thing to do: an HTTP request, a passkey to create or assert, or the result. The CLI and the
//! browser only carry those out (rustls's discipline: this crate makes no connection, reads no
//! file, keeps no clock; times are arguments).
//!
//! Trust: the user's authenticator (its PRF output) and the recovery code the user types are
//! trusted; the server is not. Every record it returns is authenticated by `sotto-vault`, which
//! refuses anything altered, moved or rolled back, and every answer is parsed into the shared
//! `sotto-api` shapes or refused. Secrets (PRF outputs, the session token, recovery codes) live
//! in zeroizing types without Debug.

mod account;
pub mod enclaves;
mod flow;
mod history;
mod http;
mod passkey;
mod tokens;

pub use account::{
    account_info, sign_out, AddPasskey, AddedPasskey, DeleteAccount, Recover, RemovePasskey,
    RotateRecovery, Session, SignIn, SignUp, SignedIn, SignedUp, Unlock, Unlocked,
};
pub use flow::{Answer, Flow, Step, VaultFlow};
pub use history::{
    delete_message, Conversation, DeleteConversation, EditHeader, EnsureKey, History, Pull, Writes,
    HEADER_ATTEMPTS,
};
pub use http::{ClientError, Method, Request, Response, Token};
pub use passkey::{rp_id_of, Assertion, NewPasskey, PasskeyRequest, Prf};
pub use sotto_api::routes;
pub use tokens::{
    FetchTokens, RelayPolicy, RelayToken, Wallet, BATCH as TOKEN_BATCH, LOW as TOKENS_LOW,
};

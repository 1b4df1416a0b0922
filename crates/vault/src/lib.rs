//! Sotto's client-side vault: the keys that make history readable only by its owner, and the
//! record format the server stores without being able to read, move or roll back.
//!
//! Trust: this crate runs on the user's device (CLI, or the browser through wasm32). It trusts
//! the PRF output of the user's passkey, the recovery code the user types, and its own random
//! numbers; it trusts nothing the server returns: every record is authenticated against the
//! account, id, kind and version it claims, and versions older than ones already seen are
//! refused. It has no I/O and no clock; times are arguments.
//!
//! Key hierarchy: passkey PRF output ─HKDF→ KEK ┐
//!                recovery code ─HKDF→ KEK ─────┴─wrap→ vault key ─wrap→ conversation keys
//!                                                                   └─seal→ headers, messages
//!
//! Each conversation's messages form a hash chain ([`chain`]), so a message the server drops,
//! withholds or reorders is caught by the next one a client holds.

pub mod chain;
mod keys;
mod ledger;
mod payload;
pub mod record;
mod recovery;
mod vault;

pub use chain::{Body, ChainError, Entry, Link};
pub use keys::{prf_salt, Kek};
pub use ledger::Ledger;
pub use payload::{Header, Incomplete, Message, Role};
pub use recovery::{verifier_of, RecoveryCode, RecoveryCodeError};
pub use vault::{new_id, passkey_wrap_id, Opened, RecordName, Sealed, Vault, RECOVERY_WRAP_ID};

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("the system random number generator failed")]
    Randomness,
    #[error("record {id} failed authentication: it was altered, or moved from another id, account, kind or version")]
    Authentication { id: String },
    #[error("this key does not open the vault (wrong passkey or recovery code for this account)")]
    WrongKey,
    #[error("the server served record {id} at version {served}, older than version {seen} already seen: refusing a rollback")]
    Rollback { id: String, seen: u64, served: u64 },
    #[error("the server served record {id} at version {version} again after a deletion of it was seen: refusing to undo a deletion")]
    Undeleted { id: String, version: u64 },
    #[error("the server served a deletion marker for record {id} at version {claimed}, but version {seen} was already seen: a deletion always comes after the version it deletes")]
    StaleDeletion { id: String, seen: u64, claimed: u64 },
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("record {0} is filed under the wrong kind or conversation")]
    Misfiled(String),
    #[error("record id {0:?} is not one Sotto writes")]
    UnknownRecordId(String),
    #[error("record {0} has been deleted")]
    Deleted(String),
    #[error("no key for conversation {0}: its key record is missing or was deleted")]
    MissingConversationKey(String),
    #[error("record {id} decrypted but its contents are malformed")]
    Decode { id: String },
    #[error("could not encode a record")]
    Encode,
    #[error("a sealed record is truncated")]
    Truncated,
    #[error("unknown record format {0}")]
    UnknownFormat(u8),
    #[error("a key has the wrong length")]
    BadKeyLength,
    #[error("a record of {0} bytes is too large")]
    TooLarge(usize),
}

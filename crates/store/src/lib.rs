//! Storage for the untrusted server: accounts, passkey credentials (public keys), sessions,
//! and the opaque encrypted records clients sync through it.
//!
//! Nothing stored here is readable by the server: record bodies are ciphertext sealed by the
//! client's vault, credentials are WebAuthn public keys, sessions are kept as SHA-256 hashes of
//! their tokens, and the recovery values cannot unwrap anything. The store is still where
//! availability and integrity of the sync protocol live: conditional writes (compare-and-swap on
//! a per-record version), a per-account change sequence that increases in commit order, quotas,
//! and durable commits. Every operation takes the account it acts for, so no query can reach
//! another account's rows.
//!
//! Two backends implement [`Store`] with identical semantics, checked by one conformance suite
//! (`tests/conformance.rs`) that runs against both: [`sqlite::SqliteStore`] (embedded, the
//! default) and [`postgres::PostgresStore`] (to scale out). [`open`] picks one from a spec.
//! What the contract decides is written once for both: the record rules (versions, markers,
//! quotas, the last credential) in `rules`, the schema and its migrations in `schema`, the
//! row conversions and error context in `driver`, and the operations whose steps are the same
//! on both (creating an account, deleting a credential, writing, deleting and paging records)
//! in `ops`; each backend holds only its SQL and how it talks to its database.
//!
//! # The contract both backends keep
//!
//! - **Versions.** A record that never existed is at version 0; `put_record` with
//!   `expected_version` 0 creates it at version 1, and every later write (put or delete) adds 1.
//!   A put or a conditional delete whose expected version is not the current one fails with
//!   [`StoreError::Conflict`] carrying the current version (0 if the record never existed) and
//!   changes nothing.
//! - **Deletion markers.** Deleting a record keeps a marker row: no ciphertext, version + 1, a
//!   new sequence number, so `changes` tells the account's other devices. The ciphertext itself
//!   is gone from the database (set to NULL; SQLite also runs with `secure_delete` and truncates
//!   its write-ahead log after deletions, so the bytes are overwritten in its files).
//!   `get_record` and `changes` return markers (with `ciphertext: None`). A put over a marker
//!   must name the marker's version. Deleting an absent record or a marker returns `false` and
//!   changes nothing, whatever `expected_version` says.
//! - **Change sequence.** Each account has its own counter; every put and every record turned
//!   into a marker takes the next value, assigned under the account's write lock, so values are
//!   gap-free and increase in commit order. `changes(since, limit, max_bytes)` returns records
//!   and markers with `seq > since`, in `seq` order: at most `limit`, and no more than
//!   `max_bytes` of ciphertext in all, except that the first change is always returned (a
//!   record may be larger than the budget; a page is never empty while changes wait). `next`
//!   is the cursor for the following page (`since` when the page is empty) and `more` says
//!   whether changes after it exist.
//! - **Quotas.** Usage counts the live (non-marker) records of the account and the sum of their
//!   ciphertext lengths. It is kept in the account row and updated in the same transaction as
//!   the write. A put fails with [`StoreError::QuotaExceeded`] (`"records"` checked before
//!   `"bytes"`) when it would raise a count above its limit; a write that does not raise a count
//!   (an overwrite with a smaller body, say) is allowed even over a lowered quota. Deletions free
//!   their bytes and their record slot.
//! - **Accounts.** `create_account` inserts the account, its first credential and its recovery
//!   values atomically: a credential id already registered to any account gives
//!   [`StoreError::DuplicateCredential`], a recovery lookup already in use gives
//!   [`StoreError::DuplicateRecovery`] (credential checked first), and nothing is written.
//!   `delete_account` removes every row of the account in every table, and fails with
//!   [`StoreError::NoAccount`] if there is no such account. Writes for a missing account
//!   (`add_credential`, `rotate_recovery`, `create_session`, `put_record`, `delete_record`,
//!   `delete_group`) fail with [`StoreError::NoAccount`]; reads for one return nothing.
//! - **Credentials.** Credential ids are unique across all accounts. `credentials` lists them
//!   oldest first. `touch_credential` replaces the stored passkey state and sets `last_used_at`;
//!   when the account has no such credential (deleted meanwhile) it changes nothing and is not
//!   an error, so a racing deletion is never undone. `delete_credential` ends the sessions
//!   opened with that credential in the same transaction: no request can still be served on
//!   the strength of a passkey once it is gone.
//! - **Recovery.** `rotate_recovery` replaces the account's lookup and verifier and writes the
//!   record holding the vault key wrapped for the new code, in one transaction: either both
//!   change or neither does, so one recovery code works at every moment. The record write
//!   follows `put_record`'s rules (a version conflict or quota refusal changes nothing); a
//!   lookup used by another account gives [`StoreError::DuplicateRecovery`] and changes
//!   nothing.
//! - **Sessions.** Only the 32-byte SHA-256 of a token is stored, with its expiry and the
//!   credential it was opened with (none for a recovery sign-in); `session` treats a session
//!   with `expires_at <= now` as absent, and `purge_sessions(now)` deletes those rows.
//! - **Tokens.** `take_tokens(account, period, count, limit)` adds `count` to the tokens the
//!   account was issued in `period` if the sum stays within `limit`, atomically (two racing
//!   calls cannot both pass the limit), and forgets the account's counts of every other period;
//!   over the limit it changes nothing and says so ([`TokenGrant::granted`] false). It fails
//!   with [`StoreError::NoAccount`] for a missing account. `spend_token(key_id, nonce)` records
//!   a redeemed token and returns true the first time only, for any number of racing callers;
//!   `forget_spent_tokens(keep)` deletes the spent tokens of every issuer key but `keep`. No
//!   row about a spent token names an account, and issuance rows hold only counts.
//! - **Transient state.** What several servers on one database must see alike lives here too:
//!   WebAuthn ceremonies between their start and finish, step-up proofs, and rate-limit
//!   buckets. Times are the caller's (`now_ms`), never the database's. `put_pending` stores an
//!   entry of a [`PendingKind`] (the two kinds never count against each other) after forgetting
//!   that kind's entries expired by `now_ms`; an entry is live while `expires_ms > now_ms`. Its
//!   owner is counted: an [`PendingOwner::Account`] holding `per_account` live entries of the
//!   kind loses its own oldest (by `now_ms` at their put, then id) to make room, a
//!   [`PendingOwner::Net`] holding `per_net` is refused ([`PendingPut::NetFull`]), and a kind
//!   holding `total` live entries refuses every owner ([`PendingPut::TableFull`]). The
//!   per-owner caps hold exactly for any number of racing servers; the total may be exceeded
//!   under PostgreSQL by the puts racing each other (see [`postgres`]). A put for a missing
//!   account fails with [`StoreError::NoAccount`], and `delete_account` removes the account's
//!   entries. `take_pending` removes an entry and returns it if it was live, to one of any
//!   number of racing callers. `rate_limit(key, now_ms, per_minute, burst)` is a token bucket
//!   per opaque key: a new key starts with `burst` (at least 1) tokens, a bucket refills at
//!   `per_minute` a minute (counted exactly, in sixty-thousandths of a token) up to `burst`,
//!   and each allowed call takes one token, atomically across racing callers; a bucket's time
//!   never goes back, so a caller whose clock is behind gets no tokens for the difference.
//!   `purge_transient(now_ms, idle_before_ms)` deletes the expired entries and the buckets last
//!   refilled before `idle_before_ms` (left alone for a refill period, a bucket is full, the
//!   same as none). A bucket's key is the caller's to choose, so the store cannot tell which
//!   keys name an account: `delete_account` leaves them, and the purge forgets each once idle.
//! - **Errors.** Database failures become [`StoreError::Backend`] naming the operation and
//!   carrying the database's own message, never record contents or key values.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use sotto_api::{Changes, PutResult, Quota, RecordOut, Usage};

mod driver;
mod ops;
pub mod postgres;
mod rules;
mod schema;
pub mod sqlite;

/// Server-assigned account identifier (the WebAuthn user handle: a random UUID, 16 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct AccountId(pub [u8; 16]);

/// A stored WebAuthn credential: the verifier's serialized state (public key, counter, …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialRow {
    pub credential_id: Vec<u8>,
    /// Opaque to the store: the WebAuthn library's serialized credential.
    pub passkey: Vec<u8>,
    pub name: String,
    pub created_at: u64,
    pub last_used_at: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountRow {
    pub id: AccountId,
    pub created_at: u64,
    pub has_recovery: bool,
    pub usage: Usage,
}

/// A conditional write of one record.
#[derive(Clone, Debug)]
pub struct RecordWrite<'a> {
    pub id: &'a str,
    pub group: Option<&'a str>,
    pub kind: &'a str,
    /// The version the client last saw (0: the record has never existed).
    pub expected_version: u64,
    pub ciphertext: &'a [u8],
}

/// Which table of short-lived entries: WebAuthn ceremonies between their start and finish, or
/// step-up proofs. The two are counted separately: a ceremony and a proof never count against
/// each other's caps.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PendingKind {
    Ceremony,
    Proof,
}

/// Who a pending entry is counted against.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PendingOwner {
    /// A signed-in account: over its cap, its own oldest entry is pushed out, so a loop in one
    /// account only ever cancels that account's ceremonies.
    Account(AccountId),
    /// An unauthenticated client network: over its cap, refused (pushing out would let one
    /// network cancel its neighbours' sign-ins behind the same address).
    Net(NetKey),
}

/// A client network as the server keys it: 1 to 16 bytes of its address (the 4 bytes of an
/// IPv4 address, the first 8 of an IPv6 one), kept with their length so that keys of different
/// lengths never compare equal.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct NetKey {
    len: u8,
    /// Zero past `len`, so the derived comparisons see only the key.
    bytes: [u8; 16],
}

impl NetKey {
    /// The key of `bytes`; `None` when there are none or more than 16.
    pub fn new(bytes: &[u8]) -> Option<NetKey> {
        let len = u8::try_from(bytes.len())
            .ok()
            .filter(|n| (1..=16).contains(n))?;
        let mut key = NetKey {
            len,
            bytes: [0; 16],
        };
        key.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(key)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// An IPv4 address.
impl From<[u8; 4]> for NetKey {
    fn from(v4: [u8; 4]) -> NetKey {
        let mut bytes = [0; 16];
        bytes[..4].copy_from_slice(&v4);
        NetKey { len: 4, bytes }
    }
}

/// The first 64 bits of an IPv6 address.
impl From<[u8; 8]> for NetKey {
    fn from(v6: [u8; 8]) -> NetKey {
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&v6);
        NetKey { len: 8, bytes }
    }
}

/// The caps [`Store::put_pending`] keeps, in live entries of one kind.
#[derive(Clone, Copy, Debug)]
pub struct PendingLimits {
    /// Per signed-in account; a new entry beyond it pushes out the account's oldest.
    pub per_account: u32,
    /// Per client network; a new entry beyond it is refused.
    pub per_net: u32,
    /// In all; a new entry beyond it is refused.
    pub total: u32,
}

/// What [`Store::put_pending`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PendingPut {
    Stored,
    /// The network already holds [`PendingLimits::per_net`] live entries of the kind.
    NetFull,
    /// The kind already holds [`PendingLimits::total`] live entries.
    TableFull,
}

/// What [`Store::take_tokens`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenGrant {
    pub granted: bool,
    /// Tokens the account may still be issued in the period, after this call.
    pub remaining: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the record changed since version {expected}: it is now at version {current}")]
    Conflict { expected: u64, current: u64 },
    #[error("the account's storage quota is used up ({0})")]
    QuotaExceeded(&'static str),
    #[error("no such account")]
    NoAccount,
    #[error("that credential is already registered")]
    DuplicateCredential,
    #[error("that recovery lookup is already in use")]
    DuplicateRecovery,
    #[error("that is the account's last credential")]
    LastCredential,
    #[error("the database failed: {0}")]
    Backend(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// One storage backend. Implementations make every successful call durable before returning
/// (an acknowledged write survives a crash of the server process), keep each call atomic, and
/// serialize writes per account so that change sequence numbers are assigned in commit order.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates an account with its first credential and its recovery verifier, atomically.
    async fn create_account(
        &self,
        id: AccountId,
        now: u64,
        first: CredentialRow,
        recovery_lookup: [u8; 32],
        recovery_verifier: [u8; 32],
    ) -> Result<()>;
    async fn account(&self, id: AccountId) -> Result<Option<AccountRow>>;
    /// Removes the account and everything it owns: credentials, sessions, records, markers.
    async fn delete_account(&self, id: AccountId) -> Result<()>;

    async fn add_credential(&self, account: AccountId, cred: CredentialRow) -> Result<()>;
    async fn credentials(&self, account: AccountId) -> Result<Vec<CredentialRow>>;
    /// Saves updated verifier state (sign counter, backup flags) after a sign-in.
    async fn touch_credential(
        &self,
        account: AccountId,
        credential_id: &[u8],
        passkey: &[u8],
        now: u64,
    ) -> Result<()>;
    /// Deletes a credential and the sessions opened with it. Returns false when the account has
    /// no such credential; refuses to delete the account's last one
    /// ([`StoreError::LastCredential`]), atomically, so two concurrent deletions of an
    /// account's last two credentials cannot both succeed.
    async fn delete_credential(&self, account: AccountId, credential_id: &[u8]) -> Result<bool>;

    /// Sets a new recovery lookup and verifier and writes `wrap` (the vault key wrapped for the
    /// new code) as `put_record` would, all in one transaction.
    async fn rotate_recovery(
        &self,
        account: AccountId,
        lookup: [u8; 32],
        verifier: [u8; 32],
        wrap: RecordWrite<'_>,
        quota: Quota,
    ) -> Result<PutResult>;
    async fn find_recovery(&self, lookup: &[u8; 32]) -> Result<Option<(AccountId, [u8; 32])>>;

    /// A new session, opened with `credential` (`None`: with the recovery code).
    async fn create_session(
        &self,
        token_hash: [u8; 32],
        account: AccountId,
        credential: Option<&[u8]>,
        expires_at: u64,
    ) -> Result<()>;
    /// The account of a live session (expired ones are absent).
    async fn session(&self, token_hash: &[u8; 32], now: u64) -> Result<Option<AccountId>>;
    async fn delete_session(&self, token_hash: &[u8; 32]) -> Result<()>;
    /// Deletes every session expired at `now`; returns how many.
    async fn purge_sessions(&self, now: u64) -> Result<u64>;

    /// Compare-and-swap write. On success the record's version is `expected_version + 1` and it
    /// gets the account's next change sequence number. Writing over a deletion marker needs the
    /// marker's version.
    async fn put_record(
        &self,
        account: AccountId,
        write: RecordWrite<'_>,
        quota: Quota,
    ) -> Result<PutResult>;
    async fn get_record(&self, account: AccountId, id: &str) -> Result<Option<RecordOut>>;
    /// Replaces the record by a deletion marker (no ciphertext, version + 1, new sequence
    /// number), if it exists and, when given, is at `expected_version`. Returns false if absent.
    async fn delete_record(
        &self,
        account: AccountId,
        id: &str,
        expected_version: Option<u64>,
    ) -> Result<bool>;
    /// Deletes every live record of a group as `delete_record` does; returns how many.
    async fn delete_group(&self, account: AccountId, group: &str) -> Result<u64>;
    /// One page of the change feed: records and markers whose sequence number is greater than
    /// `since`, in sequence order, at most `limit` of them and at most `max_bytes` of
    /// ciphertext after the first.
    async fn changes(
        &self,
        account: AccountId,
        since: u64,
        limit: u32,
        max_bytes: u64,
    ) -> Result<Changes>;

    /// Counts `count` more tokens issued to the account in `period` if that stays within
    /// `limit`, and drops its counts of other periods.
    async fn take_tokens(
        &self,
        account: AccountId,
        period: u64,
        count: u32,
        limit: u32,
    ) -> Result<TokenGrant>;
    /// Records a redeemed token; true if it had not been spent before.
    async fn spend_token(&self, key_id: &[u8; 32], nonce: &[u8; 32]) -> Result<bool>;
    /// Deletes the spent tokens of every issuer key but `keep` (tokens under other keys are
    /// refused anyway); returns how many.
    async fn forget_spent_tokens(&self, keep: &[u8; 32]) -> Result<u64>;

    /// Stores `value` under `id` (the SHA-256 of a random token, never reused) for `kind`,
    /// owned by `owner`, until `expires_ms`; first forgets the entries of `kind` that expired by
    /// `now_ms`. An account at its cap loses its own oldest entry; a network at its cap, or a
    /// kind at its total, is refused and nothing is stored.
    // The entry's own fields and the caps it is put under; a struct would only name them twice.
    #[allow(clippy::too_many_arguments)]
    async fn put_pending(
        &self,
        kind: PendingKind,
        id: &[u8; 32],
        owner: PendingOwner,
        value: &[u8],
        now_ms: u64,
        expires_ms: u64,
        limits: PendingLimits,
    ) -> Result<PendingPut>;
    /// Takes the entry out, once (of racing takers, exactly one gets it); an expired one is gone
    /// (`None`).
    async fn take_pending(
        &self,
        kind: PendingKind,
        id: &[u8; 32],
        now_ms: u64,
    ) -> Result<Option<(Vec<u8>, PendingOwner)>>;
    /// One request against the token bucket `key` (the caller's, such as a prefix and a network
    /// or an account id): refills it at `per_minute` a minute up to `burst` (at least 1), and
    /// takes one token if there is one; true if the request may go ahead. Racing callers on any
    /// number of servers cannot both take the last token, and a clock behind the bucket's time
    /// adds no tokens.
    async fn rate_limit(
        &self,
        key: &[u8],
        now_ms: u64,
        per_minute: u32,
        burst: u32,
    ) -> Result<bool>;
    /// Deletes the pending entries expired by `now_ms` and the buckets last refilled before
    /// `idle_before_ms` (a bucket left alone for a refill period is full, the same as none);
    /// returns how many rows went.
    async fn purge_transient(&self, now_ms: u64, idle_before_ms: u64) -> Result<u64>;
}

/// Opens the backend a spec names: `postgres://…` or `postgresql://…` connects to PostgreSQL,
/// `sqlite:PATH` or a bare `PATH` opens (creating if needed) an SQLite file.
pub async fn open(spec: &str) -> Result<Arc<dyn Store>> {
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        return Ok(Arc::new(postgres::PostgresStore::connect(spec).await?));
    }
    let path = PathBuf::from(spec.strip_prefix("sqlite:").unwrap_or(spec));
    if path.as_os_str().is_empty() {
        return Err(StoreError::Backend(
            "open: the store spec names no SQLite file".into(),
        ));
    }
    // Opening creates the file and may migrate the schema: blocking work, kept off the runtime.
    let store = tokio::task::spawn_blocking(move || sqlite::SqliteStore::open(&path))
        .await
        .map_err(|e| StoreError::Backend(format!("open: the SQLite worker failed: {e}")))??;
    Ok(Arc::new(store))
}

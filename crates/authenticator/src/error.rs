//! The one error type of this crate. Variants say which check failed and why; none carries
//! secret material (no keys, seeds, passphrases or PRF outputs).

use std::path::PathBuf;

/// Everything that can go wrong loading, saving or using a keyring.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The keyring file does not exist (the CLI may treat this as "no passkey yet").
    #[error("keyring file {path} does not exist")]
    NotFound { path: PathBuf },

    /// An I/O operation on the keyring file or its directory failed.
    #[error("keyring file {path}: {op} failed: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// The keyring file may be read or written by group or others.
    #[error(
        "keyring file {path} is accessible by group or others (mode {mode:03o}); it holds private keys: run `chmod 600 {path}`"
    )]
    InsecurePermissions { path: PathBuf, mode: u32 },

    /// The keyring path is not a regular file.
    #[error("keyring path {path} is not a regular file")]
    NotAFile { path: PathBuf },

    /// The keyring file is larger than any keyring this crate writes.
    #[error("keyring file {path} is {size} bytes, more than the {max} bytes a keyring may have")]
    FileTooLarge { path: PathBuf, size: u64, max: u64 },

    /// The content is not a Sotto keyring at all (not JSON, or no/other `format` field).
    #[error("not a Sotto keyring: {reason}")]
    NotAKeyring { reason: String },

    /// The keyring was written by a format version this build does not read.
    #[error(
        "keyring format version {found} is not supported (this build reads version {supported})"
    )]
    UnsupportedVersion { found: u64, supported: u32 },

    /// The keyring is a Sotto keyring but a field is missing or invalid.
    #[error("malformed keyring: {reason}")]
    Malformed { reason: String },

    /// The keyring is sealed with a passphrase and none was given.
    #[error("the keyring is sealed with a passphrase; a passphrase is required to open it")]
    PassphraseRequired,

    /// A passphrase was given but the keyring is stored in the clear; refusing so that the
    /// caller does not believe the file is protected when it is not.
    #[error("a passphrase was given but the keyring is not sealed (its credentials are stored in the clear)")]
    UnexpectedPassphrase,

    /// Decryption failed: the passphrase is wrong or the sealed content was altered.
    #[error("wrong passphrase (or the sealed keyring was altered): decryption failed")]
    WrongPassphrase,

    /// Argon2id refused its parameters or failed.
    #[error("passphrase key derivation failed: {reason}")]
    Kdf { reason: String },

    /// Sealing the keyring failed.
    #[error("sealing the keyring failed: {reason}")]
    Seal { reason: String },

    /// The operating system's random number generator failed.
    #[error("the OS random number generator failed: {reason}")]
    Random { reason: String },

    /// The origin is not a URL.
    #[error("origin {origin:?} is not a valid URL: {reason}")]
    InvalidOrigin { origin: String, reason: String },

    /// The relying party's options JSON does not have the expected shape.
    #[error("invalid WebAuthn options from the relying party: {reason}")]
    InvalidOptions { reason: String },

    /// The WebAuthn client refused the origin / rp id pair.
    #[error("origin {origin} may not act for this relying party: {reason}")]
    OriginNotAllowed { origin: String, reason: String },

    /// The keyring holds no credential usable for this relying party.
    #[error("the keyring holds no credential for relying party {rp_id:?}")]
    NoCredential { rp_id: String },

    /// The requested credential is not in the keyring for this relying party.
    #[error("the keyring holds no credential {credential_id} for relying party {rp_id:?}")]
    UnknownCredential {
        rp_id: String,
        /// base64url of the credential id
        credential_id: String,
    },

    /// The relying party excluded a credential this keyring already holds for it.
    #[error("the keyring already holds a credential the relying party {rp_id:?} excluded (already registered)")]
    CredentialExcluded { rp_id: String },

    /// The credential store refused to keep what the authenticator produced.
    #[error("the keyring refused the new credential: {reason}")]
    StoreRefused { reason: String },

    /// The WebAuthn client failed the ceremony for another reason.
    #[error("WebAuthn client error: {reason}")]
    Client { reason: String },

    /// The authenticator failed with a CTAP2 status.
    #[error("authenticator error: {reason}")]
    Authenticator { reason: String },

    /// The authenticator produced no PRF output for this credential.
    #[error("the authenticator produced no PRF output for this credential")]
    PrfUnavailable,

    /// The authenticator's response could not be turned into the JSON a server expects.
    #[error("could not encode the response: {reason}")]
    Encode { reason: String },
}

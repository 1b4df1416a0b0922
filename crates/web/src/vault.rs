//! The browser's vault: `sotto_vault` behind JSON in, JSON out, for the flows the CLI runs
//! (sign-up, passkey sign-in, recovery, adding a passkey, conversations, sync).
//!
//! Trust: the PRF output and the recovery code come from the user (their passkey, their
//! typing) and stay in wasm memory, zeroized when dropped; everything shaped like a record came
//! from the untrusted server and is authenticated by `sotto_vault` before any of it is
//! returned. What leaves towards JS is ciphertext for the server, plaintext the user is about
//! to read, and the two recovery values the account API needs (a lookup handle, a sign-in
//! secret or its hash); the recovery code's text leaves once, to be written down.

use serde::Serialize;
use sotto_api::{PutRecord, RecordOut, RecoverSignIn, RecoveryVerifier};
use sotto_vault::{Header, Kek, Ledger, Message, Opened, RecoveryCode, Sealed, Vault, VaultError};
use zeroize::Zeroizing;

use crate::error::{json, json_quiet, WebError};

fn prf32(prf: &[u8]) -> Result<Zeroizing<[u8; 32]>, WebError> {
    let bytes: [u8; 32] = prf.try_into().map_err(|_| WebError::PrfLength(prf.len()))?;
    Ok(Zeroizing::new(bytes))
}

fn record(record_json: &str) -> Result<RecordOut, WebError> {
    serde_json::from_str(record_json).map_err(json("record JSON"))
}

#[derive(Serialize)]
struct SealedOut<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    conv: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    msg: Option<&'a str>,
    /// The body of `PUT /v1/records/{id}`.
    put: &'a PutRecord,
}

fn sealed_json(s: &Sealed, conv: Option<&str>, msg: Option<&str>) -> Result<String, WebError> {
    serde_json::to_string(&SealedOut {
        id: &s.id,
        conv,
        msg,
        put: &s.put,
    })
    .map_err(json("sealed record"))
}

/// A recovery code held in wasm memory: generated at sign-up or typed at recovery.
pub struct RecoveryCore {
    code: RecoveryCode,
    revealed: bool,
}

impl RecoveryCore {
    pub fn generate() -> Result<Self, WebError> {
        Ok(RecoveryCore {
            code: RecoveryCode::generate()?,
            revealed: false,
        })
    }

    /// A code the user typed; typos are caught by its checksum before any network call.
    pub fn parse(text: &str) -> Result<Self, WebError> {
        Ok(RecoveryCore {
            code: RecoveryCode::parse(text)?,
            // The user already has it; there is nothing to show.
            revealed: true,
        })
    }

    /// The code's text, the first time only: a freshly generated code is shown once.
    pub fn reveal(&mut self) -> Result<Zeroizing<String>, WebError> {
        if self.revealed {
            return Err(WebError::State(
                "the recovery code has already been shown once",
            ));
        }
        self.revealed = true;
        Ok(self.code.to_text())
    }

    /// `{"lookup","verifier"}` for `RegisterFinish.recovery` or replacing the recovery code.
    pub fn verifier_json(&self) -> Result<String, WebError> {
        serde_json::to_string(&RecoveryVerifier {
            lookup: self.code.lookup(),
            verifier: self.code.verifier(),
        })
        .map_err(json("recovery verifier"))
    }

    /// `{"lookup","secret"}`: the body of the recovery sign-in request.
    pub fn sign_in_json(&self) -> Result<Zeroizing<String>, WebError> {
        serde_json::to_string(&RecoverSignIn {
            lookup: self.code.lookup(),
            secret: *self.code.sign_in_secret(),
        })
        .map(Zeroizing::new)
        .map_err(json("recovery sign-in"))
    }

    fn kek(&self, account: &str) -> Kek {
        self.code.kek(account)
    }
}

/// One record of a sync, opened or refused, for the UI.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Item<'a> {
    Wrap {
        id: &'a str,
        version: u64,
    },
    ConversationKey {
        id: &'a str,
        conv: &'a str,
        version: u64,
    },
    Header {
        id: &'a str,
        conv: &'a str,
        version: u64,
        header: &'a Header,
    },
    Message {
        id: &'a str,
        conv: &'a str,
        msg: &'a str,
        version: u64,
        message: &'a Message,
    },
    Deleted {
        id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        conv: Option<&'a str>,
        version: u64,
    },
    Error {
        id: &'a str,
        code: &'static str,
        message: String,
    },
}

/// A stable name for each refusal, for the UI to branch on.
pub fn error_code(e: &VaultError) -> &'static str {
    match e {
        VaultError::Randomness => "randomness",
        VaultError::Authentication { .. } => "authentication",
        VaultError::WrongKey => "wrong_key",
        VaultError::Rollback { .. } => "rollback",
        VaultError::Misfiled(_) => "misfiled",
        VaultError::UnknownRecordId(_) => "unknown_record_id",
        VaultError::Deleted(_) => "deleted",
        VaultError::MissingConversationKey(_) => "missing_conversation_key",
        VaultError::Decode { .. } => "decode",
        VaultError::Encode => "encode",
        VaultError::Truncated => "truncated",
        VaultError::UnknownFormat(_) => "unknown_format",
        VaultError::BadKeyLength => "bad_key_length",
        VaultError::TooLarge(_) => "too_large",
    }
}

/// An unlocked vault.
pub struct VaultCore {
    vault: Vault,
}

impl VaultCore {
    /// A new vault for a just-registered account.
    pub fn create(account: &str) -> Result<Self, WebError> {
        // The vault crate also offers a recovery code; the web app makes its own earlier,
        // because the registration that yields the account id already carries its verifier.
        let (vault, _) = Vault::create(account)?;
        Ok(VaultCore { vault })
    }

    /// Opens the vault with a passkey's PRF output and its `wrap.pk.*` record (JSON as served).
    pub fn unlock_with_prf(
        account: &str,
        prf: &[u8],
        credential_id: &[u8],
        wrap_json: &str,
    ) -> Result<Self, WebError> {
        let prf = prf32(prf)?;
        let kek = Kek::from_prf(&prf, account, credential_id);
        Ok(VaultCore {
            vault: Vault::unlock(account, &kek, &record(wrap_json)?)?,
        })
    }

    /// Opens the vault with the recovery code and the `wrap.recovery` record.
    pub fn unlock_with_recovery(
        account: &str,
        recovery: &RecoveryCore,
        wrap_json: &str,
    ) -> Result<Self, WebError> {
        Ok(VaultCore {
            vault: Vault::unlock(account, &recovery.kek(account), &record(wrap_json)?)?,
        })
    }

    pub fn account(&self) -> &str {
        self.vault.account()
    }

    /// The vault key wrapped for a passkey: `{"id","put"}`.
    pub fn wrap_for_prf(
        &self,
        prf: &[u8],
        credential_id: &[u8],
        expected_version: u64,
    ) -> Result<String, WebError> {
        let prf = prf32(prf)?;
        let kek = Kek::from_prf(&prf, self.vault.account(), credential_id);
        let id = sotto_vault::passkey_wrap_id(credential_id);
        sealed_json(
            &self.vault.wrap_for(&kek, &id, expected_version)?,
            None,
            None,
        )
    }

    /// The vault key wrapped for a recovery code: `{"id","put"}`.
    pub fn wrap_for_recovery(
        &self,
        recovery: &RecoveryCore,
        expected_version: u64,
    ) -> Result<String, WebError> {
        let kek = recovery.kek(self.vault.account());
        sealed_json(
            &self
                .vault
                .wrap_for(&kek, sotto_vault::RECOVERY_WRAP_ID, expected_version)?,
            None,
            None,
        )
    }

    /// A new conversation: `{"conv","id","put"}`, the key record to write before anything else.
    pub fn new_conversation(&mut self) -> Result<String, WebError> {
        let (conv, sealed) = self.vault.new_conversation()?;
        sealed_json(&sealed, Some(&conv), None)
    }

    pub fn has_conversation(&self, conv: &str) -> bool {
        self.vault.has_conversation(conv)
    }

    /// Seals a header (JSON as [`new_header`] makes it) at `expected_version`: `{"id","put"}`.
    pub fn seal_header(
        &self,
        conv: &str,
        header_json: &str,
        expected_version: u64,
    ) -> Result<String, WebError> {
        let header: Header =
            serde_json::from_str(header_json).map_err(json_quiet("header JSON"))?;
        sealed_json(
            &self.vault.seal_header(conv, &header, expected_version)?,
            Some(conv),
            None,
        )
    }

    /// Seals a new message `{"role","content","created_at"}`: `{"id","conv","msg","put"}`.
    pub fn seal_message(&self, conv: &str, message_json: &str) -> Result<String, WebError> {
        let message: Message =
            serde_json::from_str(message_json).map_err(json_quiet("message JSON"))?;
        let (msg, sealed) = self.vault.seal_message(conv, &message)?;
        sealed_json(&sealed, Some(conv), Some(&msg))
    }

    /// Opens records as the server served them (a JSON array of `RecordOut`, e.g. the
    /// concatenated `records` of every changes page). Only the latest copy of each id is
    /// opened; conversation keys go first. Returns a JSON array with one item per record,
    /// opened or refused; a refused record must fail the sync, as it does in the CLI.
    pub fn open_batch(&mut self, records_json: &str) -> Result<Zeroizing<String>, WebError> {
        let records: Vec<RecordOut> =
            serde_json::from_str(records_json).map_err(json("records JSON"))?;
        let opened = self.vault.open_batch(&records);
        let items: Vec<Item<'_>> = opened
            .iter()
            .map(|(id, version, result)| {
                let version = *version;
                match result {
                    Ok(Opened::Wrap { .. }) => Item::Wrap { id, version },
                    Ok(Opened::ConversationKey { conv }) => {
                        Item::ConversationKey { id, conv, version }
                    }
                    Ok(Opened::Header { conv, header }) => Item::Header {
                        id,
                        conv,
                        version,
                        header,
                    },
                    Ok(Opened::Message { conv, msg, message }) => Item::Message {
                        id,
                        conv,
                        msg,
                        version,
                        message,
                    },
                    Ok(Opened::Deleted { name, .. }) => Item::Deleted {
                        id,
                        conv: name.group(),
                        version,
                    },
                    Err(e) => Item::Error {
                        id,
                        code: error_code(e),
                        message: e.to_string(),
                    },
                }
            })
            .collect();
        serde_json::to_string(&items)
            .map(Zeroizing::new)
            .map_err(json("opened records"))
    }

    /// The rollback ledger, to persist (ids and versions only; the server knows both).
    pub fn ledger_json(&self) -> Result<String, WebError> {
        serde_json::to_string(self.vault.ledger()).map_err(json("ledger"))
    }

    /// Continues from a ledger saved earlier; refuses it if this session has already
    /// authenticated a record below a version the saved one saw.
    pub fn restore_ledger(&mut self, ledger_json: &str) -> Result<(), WebError> {
        let saved: Ledger = serde_json::from_str(ledger_json).map_err(json("ledger JSON"))?;
        Ok(self.vault.restore_ledger(&saved)?)
    }
}

fn header_json(h: &Header) -> Result<Zeroizing<String>, WebError> {
    serde_json::to_string(h)
        .map(Zeroizing::new)
        .map_err(json("header"))
}

fn parse_header(header_json: &str) -> Result<Header, WebError> {
    serde_json::from_str(header_json).map_err(json_quiet("header JSON"))
}

/// A new conversation's header.
pub fn new_header(title: &str, now_ms: u64) -> Result<Zeroizing<String>, WebError> {
    header_json(&Header::new(title, now_ms))
}

/// Two versions of a header, merged field by field (the later edit wins); after a conflict,
/// merge the server's header with the local edit and write again at the server's version.
pub fn merge_headers(a_json: &str, b_json: &str) -> Result<Zeroizing<String>, WebError> {
    header_json(&parse_header(a_json)?.merge(&parse_header(b_json)?))
}

/// A local edit of `base`: each field given is set, stamped later than its previous edit,
/// exactly as `sotto history` edits a header.
pub fn edit_header(
    base_json: &str,
    title: Option<&str>,
    folder: Option<&str>,
    now_ms: u64,
) -> Result<Zeroizing<String>, WebError> {
    let base = parse_header(base_json)?;
    header_json(&base.edit(title, folder, now_ms))
}

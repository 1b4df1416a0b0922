//! An unlocked vault: the vault key, the conversation keys opened so far, and the rollback
//! ledger, with the record naming scheme that ties record ids to kinds and conversations.
//!
//! Record ids (visible to the server, chosen at random so they say nothing):
//! - `wrap.pk.<32 hex>`: the vault key wrapped for one passkey (hex of SHA-256 of its id);
//! - `wrap.recovery`: the vault key wrapped by the recovery code;
//! - `ck.<conv>`: a conversation key wrapped by the vault key;
//! - `ch.<conv>`: the conversation's header;
//! - `m.<conv>.<msg>`: one entry of the conversation's chain: a message, or the removal of
//!   messages the user deleted ([`crate::chain`]).
//!
//! `<conv>` and `<msg>` are 128-bit random hex ids; every record of a conversation is in group
//! `<conv>`, so deleting the group removes its key and its records at once.

use std::collections::BTreeMap;

use sotto_api::{PutRecord, RecordOut};
use zeroize::Zeroizing;

use crate::chain::{self, Body, ChainError, Entry, Link};
use crate::keys::{ConversationKey, Kek, VaultKey};
use crate::ledger::Ledger;
use crate::payload::Header;
use crate::record::{self, Context, Kind};
use crate::recovery::RecoveryCode;
use crate::VaultError;

pub use sotto_api::{passkey_wrap_id, RECOVERY_WRAP_ID};

pub fn new_id() -> Result<String, VaultError> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).map_err(|_| VaultError::Randomness)?;
    Ok(hex::encode(b))
}

fn is_hex_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What a record id says about its record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordName {
    /// The vault key wrapped for the recovery code ([`RECOVERY_WRAP_ID`]).
    RecoveryWrap,
    /// The vault key wrapped for one passkey: `handle` is from [`passkey_wrap_id`].
    PasskeyWrap {
        handle: String,
    },
    ConversationKey {
        conv: String,
    },
    ConversationHeader {
        conv: String,
    },
    Message {
        conv: String,
        msg: String,
    },
}

impl RecordName {
    pub fn parse(id: &str) -> Result<Self, VaultError> {
        let bad = || VaultError::UnknownRecordId(id.to_owned());
        if id == RECOVERY_WRAP_ID {
            return Ok(RecordName::RecoveryWrap);
        }
        if let Some(h) = id.strip_prefix("wrap.pk.") {
            return is_hex_id(h)
                .then(|| RecordName::PasskeyWrap {
                    handle: h.to_owned(),
                })
                .ok_or_else(bad);
        }
        if let Some(c) = id.strip_prefix("ck.") {
            return is_hex_id(c)
                .then(|| RecordName::ConversationKey { conv: c.to_owned() })
                .ok_or_else(bad);
        }
        if let Some(c) = id.strip_prefix("ch.") {
            return is_hex_id(c)
                .then(|| RecordName::ConversationHeader { conv: c.to_owned() })
                .ok_or_else(bad);
        }
        if let Some(rest) = id.strip_prefix("m.") {
            let (c, m) = rest.split_once('.').ok_or_else(bad)?;
            return (is_hex_id(c) && is_hex_id(m))
                .then(|| RecordName::Message {
                    conv: c.to_owned(),
                    msg: m.to_owned(),
                })
                .ok_or_else(bad);
        }
        Err(bad())
    }

    /// The record id this name parses from: `RecordName::parse(&n.id()) == Ok(n)`.
    pub fn id(&self) -> String {
        match self {
            RecordName::RecoveryWrap => RECOVERY_WRAP_ID.to_owned(),
            RecordName::PasskeyWrap { handle } => format!("wrap.pk.{handle}"),
            RecordName::ConversationKey { conv } => format!("ck.{conv}"),
            RecordName::ConversationHeader { conv } => format!("ch.{conv}"),
            RecordName::Message { conv, msg } => format!("m.{conv}.{msg}"),
        }
    }

    pub fn is_wrap(&self) -> bool {
        matches!(
            self,
            RecordName::RecoveryWrap | RecordName::PasskeyWrap { .. }
        )
    }

    pub fn kind(&self) -> Kind {
        match self {
            RecordName::RecoveryWrap | RecordName::PasskeyWrap { .. } => Kind::Wrap,
            RecordName::ConversationKey { .. } => Kind::ConversationKey,
            RecordName::ConversationHeader { .. } => Kind::ConversationHeader,
            RecordName::Message { .. } => Kind::Message,
        }
    }

    pub fn group(&self) -> Option<&str> {
        match self {
            RecordName::RecoveryWrap | RecordName::PasskeyWrap { .. } => None,
            RecordName::ConversationKey { conv }
            | RecordName::ConversationHeader { conv }
            | RecordName::Message { conv, .. } => Some(conv),
        }
    }
}

/// A record ready for `PUT /v1/records/{id}`.
pub struct Sealed {
    pub id: String,
    pub put: PutRecord,
}

/// A record, authenticated and opened.
pub enum Opened {
    /// A wrapping of the vault key; only its owner's key-encryption key opens it.
    Wrap {
        id: String,
    },
    ConversationKey {
        conv: String,
    },
    Header {
        conv: String,
        header: Header,
    },
    /// An entry of a conversation's chain; whether the chain holds together is for the
    /// holder of the whole conversation to check ([`chain::verify`]).
    Entry {
        conv: String,
        entry: Entry,
    },
    /// A deletion marker: the server says this record is gone. It carries no ciphertext, so
    /// this is only the server's word: it can always withhold a record, and this is one more
    /// way to. A message gone this way without a removal of the user's is a gap in its chain.
    Deleted {
        id: String,
        name: RecordName,
    },
}

pub struct Vault {
    account: String,
    key: VaultKey,
    conversations: BTreeMap<String, ConversationKey>,
    ledger: Ledger,
}

impl Vault {
    /// A new vault for a new account, and the recovery code to show the user once.
    pub fn create(account: &str) -> Result<(Vault, RecoveryCode), VaultError> {
        Ok((
            Vault {
                account: account.to_owned(),
                key: VaultKey::generate()?,
                conversations: BTreeMap::new(),
                ledger: Ledger::default(),
            },
            RecoveryCode::generate()?,
        ))
    }

    /// Opens a wrapping record (`wrap.pk.*` or `wrap.recovery`) with a key-encryption key.
    pub fn unlock(account: &str, kek: &Kek, wrap: &RecordOut) -> Result<Vault, VaultError> {
        if !RecordName::parse(&wrap.id)?.is_wrap() {
            return Err(VaultError::UnknownRecordId(wrap.id.clone()));
        }
        let sealed = wrap
            .ciphertext
            .as_deref()
            .ok_or_else(|| VaultError::Deleted(wrap.id.clone()))?;
        let ctx = Context {
            account,
            id: &wrap.id,
            kind: Kind::Wrap,
            version: wrap.version,
        };
        let key = record::open(&kek.0, &ctx, sealed).map_err(|e| match e {
            VaultError::Authentication { .. } => VaultError::WrongKey,
            other => other,
        })?;
        let mut ledger = Ledger::default();
        ledger.observe(&wrap.id, wrap.version)?;
        Ok(Vault {
            account: account.to_owned(),
            key: VaultKey::from_bytes(&key)?,
            conversations: BTreeMap::new(),
            ledger,
        })
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// A removal of the user's (an authenticated entry of the chain) names this message, and
    /// its record is gone: the version authenticated may not be served again (it would be
    /// refused as [`ChainError::Replayed`]).
    pub fn observe_removal(&mut self, record_id: &str) {
        self.ledger.observe_removal(record_id);
    }

    /// Continues from a ledger saved earlier, so rollbacks across restarts are caught too.
    pub fn restore_ledger(&mut self, saved: &Ledger) -> Result<(), VaultError> {
        self.ledger.absorb(saved)
    }

    fn seal(
        &self,
        key: &[u8; 32],
        id: String,
        name: &RecordName,
        expected_version: u64,
        plaintext: &[u8],
    ) -> Result<Sealed, VaultError> {
        let ctx = Context {
            account: &self.account,
            id: &id,
            kind: name.kind(),
            version: expected_version + 1,
        };
        let ciphertext = record::seal(key, &ctx, plaintext)?;
        Ok(Sealed {
            put: PutRecord {
                group: name.group().map(str::to_owned),
                kind: name.kind().as_str().to_owned(),
                expected_version,
                ciphertext,
            },
            id,
        })
    }

    /// Wraps the vault key for a passkey or the recovery code (id from [`passkey_wrap_id`] or
    /// [`RECOVERY_WRAP_ID`]).
    pub fn wrap_for(
        &self,
        kek: &Kek,
        id: &str,
        expected_version: u64,
    ) -> Result<Sealed, VaultError> {
        let name = RecordName::parse(id)?;
        if !name.is_wrap() {
            return Err(VaultError::UnknownRecordId(id.to_owned()));
        }
        self.seal(
            &kek.0,
            id.to_owned(),
            &name,
            expected_version,
            self.key.0.as_ref(),
        )
    }

    /// A new conversation: its id and its key's record (to write before anything else of it).
    pub fn new_conversation(&mut self) -> Result<(String, Sealed), VaultError> {
        let conv = new_id()?;
        let key = ConversationKey::generate()?;
        let name = RecordName::ConversationKey { conv: conv.clone() };
        let sealed = self.seal(&self.key.0, name.id(), &name, 0, key.0.as_ref())?;
        self.conversations.insert(conv.clone(), key);
        Ok((conv, sealed))
    }

    /// Whether this conversation's key has been opened (by [`Self::open`] of its `ck.` record).
    pub fn has_conversation(&self, conv: &str) -> bool {
        self.conversations.contains_key(conv)
    }

    fn conversation_key(&self, conv: &str) -> Result<&[u8; 32], VaultError> {
        self.conversations
            .get(conv)
            .map(|k| &*k.0)
            .ok_or_else(|| VaultError::MissingConversationKey(conv.to_owned()))
    }

    pub fn seal_header(
        &self,
        conv: &str,
        header: &Header,
        expected_version: u64,
    ) -> Result<Sealed, VaultError> {
        let key = self.conversation_key(conv)?;
        let name = RecordName::ConversationHeader {
            conv: conv.to_owned(),
        };
        let json = Zeroizing::new(serde_json::to_vec(header).map_err(|_| VaultError::Encode)?);
        self.seal(key, name.id(), &name, expected_version, &json)
    }

    /// Seals a new entry of a conversation's chain, following `after` (the heads its writer
    /// knows, [`chain::heads`]); returns the entry (to add to the writer's own chain once the
    /// record is written) with the record.
    pub fn seal_entry(
        &self,
        conv: &str,
        after: Vec<Link>,
        body: Body,
    ) -> Result<(Entry, Sealed), VaultError> {
        let key = self.conversation_key(conv)?;
        let msg = new_id()?;
        let name = RecordName::Message {
            conv: conv.to_owned(),
            msg: msg.clone(),
        };
        let id = name.id();
        let (entry, plaintext) = chain::new_entry(msg, &id, after, body)?;
        let sealed = self.seal(key, id, &name, 0, &plaintext)?;
        Ok((entry, sealed))
    }

    /// Authenticates and opens one record as the server served it. Conversation keys must be
    /// opened before that conversation's other records ([`Self::open_batch`] orders them).
    pub fn open(&mut self, record: &RecordOut) -> Result<Opened, VaultError> {
        let name = RecordName::parse(&record.id)?;
        if record.group.as_deref() != name.group() || record.kind != name.kind().as_str() {
            return Err(VaultError::Misfiled(record.id.clone()));
        }
        let Some(sealed) = record.ciphertext.as_deref() else {
            // A marker's version is the server's word: the ledger records no number from it
            // (see `crate::ledger`). Wrappings are the ledger's only through unlock, so their
            // markers are left out like their records; a message's deletion is the user's
            // removal in its chain ([`Self::observe_removal`]), so its marker is only checked.
            match &name {
                RecordName::RecoveryWrap | RecordName::PasskeyWrap { .. } => {}
                RecordName::Message { .. } => {
                    self.ledger.check_deletion(&record.id, record.version)?
                }
                RecordName::ConversationKey { .. } | RecordName::ConversationHeader { .. } => {
                    self.ledger.observe_deletion(&record.id, record.version)?
                }
            }
            if let RecordName::ConversationKey { conv } = &name {
                self.conversations.remove(conv);
            }
            return Ok(Opened::Deleted {
                id: record.id.clone(),
                name,
            });
        };
        let ctx = Context {
            account: &self.account,
            id: &record.id,
            kind: name.kind(),
            version: record.version,
        };
        let opened = match name {
            // Only a key-encryption key opens a wrapping, and the vault holds none here: the
            // record is not authenticated, so it must not reach the ledger, where a huge
            // version would make this device's next unlock refuse its own genuine wrapping.
            RecordName::RecoveryWrap | RecordName::PasskeyWrap { .. } => {
                return Ok(Opened::Wrap {
                    id: record.id.clone(),
                })
            }
            RecordName::ConversationKey { conv } => {
                let key = record::open(&self.key.0, &ctx, sealed)?;
                self.conversations
                    .insert(conv.clone(), ConversationKey::from_bytes(&key)?);
                Opened::ConversationKey { conv }
            }
            RecordName::ConversationHeader { conv } => {
                let pt = record::open(self.conversation_key(&conv)?, &ctx, sealed)?;
                let header = serde_json::from_slice(&pt).map_err(|_| VaultError::Decode {
                    id: record.id.clone(),
                })?;
                Opened::Header { conv, header }
            }
            RecordName::Message { conv, msg } => {
                let pt = record::open(self.conversation_key(&conv)?, &ctx, sealed)?;
                let entry =
                    chain::open_entry(msg, &record.id, &pt).ok_or_else(|| VaultError::Decode {
                        id: record.id.clone(),
                    })?;
                Opened::Entry { conv, entry }
            }
        };
        // Only authenticated records move the ledger, so garbage cannot poison it.
        match (self.ledger.observe(&record.id, record.version), &opened) {
            (Err(VaultError::Undeleted { .. }), Opened::Entry { conv, entry }) => {
                Err(ChainError::Replayed {
                    conv: conv.clone(),
                    position: entry.position(),
                }
                .into())
            }
            (Err(e), _) => Err(e),
            (Ok(()), _) => Ok(opened),
        }
    }

    /// Opens a batch of changes (e.g. every page of a change feed, concatenated): only the
    /// latest copy of each id (highest sequence number) is opened, conversation keys first.
    /// One `(id, version, result)` per id, in that order.
    pub fn open_batch(
        &mut self,
        records: &[RecordOut],
    ) -> Vec<(String, u64, Result<Opened, VaultError>)> {
        let mut latest: BTreeMap<&str, &RecordOut> = BTreeMap::new();
        for r in records {
            if latest
                .get(r.id.as_str())
                .is_none_or(|seen| seen.seq <= r.seq)
            {
                latest.insert(&r.id, r);
            }
        }
        let mut order: Vec<&RecordOut> = latest.into_values().collect();
        order.sort_by_key(|r| (!r.id.starts_with("ck."), r.seq));
        order
            .into_iter()
            .map(|r| (r.id.clone(), r.version, self.open(r)))
            .collect()
    }
}

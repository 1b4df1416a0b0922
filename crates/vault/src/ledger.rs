//! The client's memory of record versions, to refuse rollbacks.
//!
//! The associated data of a record binds its version, so the server cannot relabel an old
//! ciphertext as new. It can still serve an old ciphertext under its true, older version; the
//! ledger remembers the highest version each record id was authenticated at and refuses
//! anything lower. Clients persist it (it holds only ids and numbers, which the server knows
//! anyway).
//!
//! Only authenticated versions are recorded: a version comes into the ledger from a record
//! the vault opened under that version in its associated data, never from the server's word.
//! Two things the server hands over carry only its word:
//! - a wrapping record (`wrap.*`) in the change feed: the vault holds no key-encryption key
//!   for it there, so it opens nothing and the ledger takes nothing from it (only the wrapping
//!   a passkey or the recovery code opened at unlock is recorded);
//! - a deletion marker: it has no ciphertext, so its version is unauthenticated. Recording it
//!   would let a server serve a marker at version 2^63 and have every later genuine record of
//!   that id refused, on every run, since the ledger is saved. A marker therefore never raises
//!   (nor lowers, nor removes) a version. It may do only this: once a marker has been seen
//!   above the version authenticated for an id, that same version is not accepted again, as a
//!   deletion is always followed by a higher version (a write over a marker names the
//!   marker's version). So a server cannot undo a deletion this client saw by serving the old
//!   record again, and a forged marker costs a genuine record nothing but what the server
//!   could always do, withhold it: anything written afterwards is higher and accepted.
//!   A marker at or below the version authenticated cannot be honest and is refused.
//!
//! Messages have better than a marker: the user's deletion of one is a removal entry in the
//! conversation's chain, sealed like the messages. So for a message a marker is only checked,
//! and what forbids its record's return is the removal ([`Ledger::observe_removal`]): a forged
//! marker of a message then leaves nothing behind once the server serves the record again.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::VaultError;

#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq, Debug)]
pub struct Ledger {
    seen: BTreeMap<String, u64>,
    /// Ids last seen as a deletion marker above their version in `seen`: that version may not
    /// come back.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    deleted: BTreeSet<String>,
}

impl Ledger {
    /// Records that `id` was authenticated at `version`; refuses a version below one seen, and
    /// the version a deletion was seen over.
    pub fn observe(&mut self, id: &str, version: u64) -> Result<(), VaultError> {
        match self.seen.get(id).copied() {
            Some(seen) if version < seen => Err(VaultError::Rollback {
                id: id.to_owned(),
                seen,
                served: version,
            }),
            Some(seen) if version == seen => {
                if self.deleted.contains(id) {
                    return Err(VaultError::Undeleted {
                        id: id.to_owned(),
                        version,
                    });
                }
                Ok(())
            }
            _ => {
                self.seen.insert(id.to_owned(), version);
                self.deleted.remove(id);
                Ok(())
            }
        }
    }

    /// Takes in a deletion marker for `id` that claims `claimed` (the server's word, see the
    /// module's notes): no version is recorded, but the one authenticated may not come back.
    pub fn observe_deletion(&mut self, id: &str, claimed: u64) -> Result<(), VaultError> {
        self.check_deletion(id, claimed)?;
        self.observe_removal(id);
        Ok(())
    }

    /// Refuses a deletion marker for `id` that does not claim a version above the one
    /// authenticated; records nothing.
    pub fn check_deletion(&self, id: &str, claimed: u64) -> Result<(), VaultError> {
        match self.seen.get(id) {
            Some(&seen) if claimed <= seen => Err(VaultError::StaleDeletion {
                id: id.to_owned(),
                seen,
                claimed,
            }),
            _ => Ok(()),
        }
    }

    /// The user's own, authenticated word that record `id` is deleted: the version
    /// authenticated for it may not come back. An id never authenticated records nothing.
    pub fn observe_removal(&mut self, id: &str) {
        if self.seen.contains_key(id) {
            self.deleted.insert(id.to_owned());
        }
    }

    /// Takes in every entry of another ledger (one saved earlier); refuses if this ledger has
    /// already authenticated a record below the version the other one saw, or the version the
    /// other one saw deleted.
    pub fn absorb(&mut self, other: &Ledger) -> Result<(), VaultError> {
        for (id, &v) in &other.seen {
            let deleted = other.deleted.contains(id);
            match self.seen.get(id).copied() {
                Some(mine) if mine < v => {
                    return Err(VaultError::Rollback {
                        id: id.clone(),
                        seen: v,
                        served: mine,
                    })
                }
                Some(mine) if mine == v && deleted && !self.deleted.contains(id) => {
                    return Err(VaultError::Undeleted {
                        id: id.clone(),
                        version: mine,
                    })
                }
                Some(_) => {}
                None => {
                    self.seen.insert(id.clone(), v);
                    if deleted {
                        self.deleted.insert(id.clone());
                    }
                }
            }
        }
        Ok(())
    }

    pub fn seen(&self, id: &str) -> Option<u64> {
        self.seen.get(id).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_never_moves_a_version() {
        let mut l = Ledger::default();
        l.observe("ch.a", 2).unwrap();
        // A forged marker at a huge version: taken as a deletion, its number not kept.
        l.observe_deletion("ch.a", u64::MAX / 2).unwrap();
        assert_eq!(l.seen("ch.a"), Some(2));
        // The deleted version cannot come back, nor anything older...
        assert!(matches!(
            l.clone().observe("ch.a", 2),
            Err(VaultError::Undeleted { version: 2, .. })
        ));
        assert!(matches!(
            l.clone().observe("ch.a", 1),
            Err(VaultError::Rollback {
                seen: 2,
                served: 1,
                ..
            })
        ));
        // ...but whatever is written next is accepted.
        l.observe("ch.a", 3).unwrap();
        l.observe("ch.a", 3).unwrap();
        // Markers for ids never authenticated record nothing at all.
        l.observe_deletion("ch.b", u64::MAX).unwrap();
        assert_eq!(l.seen("ch.b"), None);
        l.observe("ch.b", 1).unwrap();
        // A checked marker (a message's) leaves nothing; the removal that accounts for it does.
        l.observe("m.c.x", 1).unwrap();
        l.check_deletion("m.c.x", 2).unwrap();
        l.clone().observe("m.c.x", 1).unwrap();
        l.observe_removal("m.c.x");
        assert!(matches!(
            l.observe("m.c.x", 1),
            Err(VaultError::Undeleted { .. })
        ));
        // A marker not above what was authenticated cannot be honest.
        assert!(matches!(
            l.observe_deletion("ch.a", 3),
            Err(VaultError::StaleDeletion {
                seen: 3,
                claimed: 3,
                ..
            })
        ));
    }

    #[test]
    fn a_saved_deletion_survives_a_restart_and_is_not_undone() {
        let mut saved = Ledger::default();
        saved.observe("m.c.x", 1).unwrap();
        saved.observe_deletion("m.c.x", 2).unwrap();
        let json = serde_json::to_string(&saved).unwrap();
        let back: Ledger = serde_json::from_str(&json).unwrap();
        assert_eq!(back, saved);
        // A ledger saved before deletions were remembered still loads.
        let old: Ledger = serde_json::from_str(r#"{"seen":{"m.c.x":1}}"#).unwrap();
        assert_eq!(old.seen("m.c.x"), Some(1));

        let mut fresh = Ledger::default();
        fresh.absorb(&back).unwrap();
        assert!(matches!(
            fresh.observe("m.c.x", 1),
            Err(VaultError::Undeleted { .. })
        ));
        // A session that has already taken the deleted version back cannot adopt the ledger.
        let mut accepted = Ledger::default();
        accepted.observe("m.c.x", 1).unwrap();
        assert!(matches!(
            accepted.absorb(&back),
            Err(VaultError::Undeleted { .. })
        ));
    }
}

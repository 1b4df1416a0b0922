//! The vault end to end, with records passing through a plain map standing for the server
//! (what the server does to them is the point of each test).

use sotto_api::RecordOut;
use sotto_vault::{
    passkey_wrap_id, Body, ChainError, Entry, Header, Kek, Message, Opened, RecoveryCode, Role,
    Sealed, Vault, VaultError, RECOVERY_WRAP_ID,
};

const ACCOUNT: &str = "6f1c0d5e-account-a";

fn stored(s: &Sealed, seq: u64) -> RecordOut {
    RecordOut {
        id: s.id.clone(),
        group: s.put.group.clone(),
        kind: s.put.kind.clone(),
        version: s.put.expected_version + 1,
        seq,
        ciphertext: Some(s.put.ciphertext.clone()),
    }
}

fn message(text: &str, at: u64) -> Body {
    Body::Message(Message::new(Role::User, text, at))
}

fn seal(v: &Vault, conv: &str, after: &[&Entry], text: &str, at: u64) -> (Entry, Sealed) {
    let after = after.iter().map(|e| e.link().clone()).collect();
    v.seal_entry(conv, after, message(text, at)).unwrap()
}

fn marker(of: &RecordOut, version: u64, seq: u64) -> RecordOut {
    RecordOut {
        version,
        seq,
        ciphertext: None,
        ..of.clone()
    }
}

#[test]
fn passkeys_and_recovery_code_all_open_the_same_vault() {
    let (vault, code) = Vault::create(ACCOUNT).unwrap();
    let prf1 = [0x11; 32];
    let prf2 = [0x22; 32];
    let kek1 = Kek::from_prf(&prf1, ACCOUNT, b"cred-one");
    let w1 = stored(
        &vault
            .wrap_for(&kek1, &passkey_wrap_id(b"cred-one"), 0)
            .unwrap(),
        1,
    );
    let wr = stored(
        &vault
            .wrap_for(&code.kek(ACCOUNT), RECOVERY_WRAP_ID, 0)
            .unwrap(),
        2,
    );

    let mut v = Vault::unlock(ACCOUNT, &kek1, &w1).unwrap();
    let (conv, ck) = v.new_conversation().unwrap();
    let ck = stored(&ck, 3);
    let (_, m) = seal(&v, &conv, &[], "hello", 5);
    let m = stored(&m, 4);

    // A second passkey: unwrap with the first, wrap for the second.
    let kek2 = Kek::from_prf(&prf2, ACCOUNT, b"cred-two");
    let w2 = stored(
        &v.wrap_for(&kek2, &passkey_wrap_id(b"cred-two"), 0).unwrap(),
        5,
    );

    // Both lost: the recovery code, typed back, opens the history.
    let typed = RecoveryCode::parse(&code.to_text()).unwrap();
    for (kek, wrap) in [(kek2, &w2), (typed.kek(ACCOUNT), &wr)] {
        let mut v = Vault::unlock(ACCOUNT, &kek, wrap).unwrap();
        let opened = v.open_batch(&[m.clone(), ck.clone()]);
        let texts: Vec<String> = opened
            .into_iter()
            .filter_map(|(_, _, r)| match r.unwrap() {
                Opened::Entry { entry, .. } => Some(entry.message()?.content.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(texts, ["hello"]);
    }

    // A wrong recovery code, a passkey's KEK for another credential, another account: refused.
    let wrong = RecoveryCode::generate().unwrap();
    assert!(matches!(
        Vault::unlock(ACCOUNT, &wrong.kek(ACCOUNT), &wr),
        Err(VaultError::WrongKey)
    ));
    let misbound = Kek::from_prf(&prf1, ACCOUNT, b"cred-two");
    assert!(matches!(
        Vault::unlock(ACCOUNT, &misbound, &w1),
        Err(VaultError::WrongKey)
    ));
    assert!(matches!(
        Vault::unlock(
            "another-account",
            &Kek::from_prf(&prf1, "another-account", b"cred-one"),
            &w1
        ),
        Err(VaultError::WrongKey)
    ));
    // The wrapping of one passkey presented as another's: refused.
    let mut moved = w1.clone();
    moved.id = passkey_wrap_id(b"cred-two");
    assert!(Vault::unlock(ACCOUNT, &kek1, &moved).is_err());
}

#[test]
fn the_server_cannot_move_replay_or_alter_records() {
    let (mut v, _) = Vault::create(ACCOUNT).unwrap();
    let (conv, ck) = v.new_conversation().unwrap();
    let ck = stored(&ck, 1);
    let (e1, m1) = seal(&v, &conv, &[], "first", 1);
    let (_, m2) = seal(&v, &conv, &[&e1], "second", 2);
    let (m1, m2) = (stored(&m1, 2), stored(&m2, 3));
    let h1 = stored(
        &v.seal_header(&conv, &Header::new("title v1", 1), 0)
            .unwrap(),
        4,
    );
    let h2 = stored(
        &v.seal_header(&conv, &Header::new("title v2", 2), 1)
            .unwrap(),
        5,
    );

    let mut reader = v;
    reader.open(&ck).unwrap();
    reader.open(&m1).unwrap();
    reader.open(&h2).unwrap();

    // One message's ciphertext served under another message's id.
    let mut swapped = m2.clone();
    swapped.ciphertext = m1.ciphertext.clone();
    assert!(matches!(
        reader.open(&swapped),
        Err(VaultError::Authentication { .. })
    ));
    // A message relabelled as the header (same conversation, other kind and id).
    let mut as_header = m1.clone();
    as_header.id = format!("ch.{conv}");
    as_header.kind = "conv-header".into();
    assert!(matches!(
        reader.open(&as_header),
        Err(VaultError::Authentication { .. })
    ));
    // Kind field changed but id kept: misfiled.
    let mut wrong_kind = m1.clone();
    wrong_kind.kind = "conv-header".into();
    assert!(matches!(
        reader.open(&wrong_kind),
        Err(VaultError::Misfiled(_))
    ));
    // The older header replayed after the newer one was seen.
    assert!(matches!(
        reader.open(&h1),
        Err(VaultError::Rollback {
            seen: 2,
            served: 1,
            ..
        })
    ));
    // The older header relabelled with the newer version number.
    let mut relabelled = h1.clone();
    relabelled.version = 2;
    assert!(matches!(
        reader.open(&relabelled),
        Err(VaultError::Authentication { .. })
    ));
    // Any flipped byte.
    let ct = m2.ciphertext.clone().unwrap();
    for i in 0..ct.len() {
        let mut t = m2.clone();
        let mut c = ct.clone();
        c[i] ^= 1;
        t.ciphertext = Some(c);
        assert!(reader.open(&t).is_err(), "flipped byte {i} accepted");
    }
    assert!(reader.open(&m2).is_ok());
}

#[test]
fn a_record_from_another_account_is_refused() {
    // Account binding inside the associated data is covered in record.rs (same key, other
    // account name); here the whole path: b's vault never opens a's records or wrappings.
    let (mut a, _) = Vault::create("account-a").unwrap();
    let (_, ck) = a.new_conversation().unwrap();
    let kek = Kek::from_prf(&[9; 32], "account-a", b"c");
    let w = stored(&a.wrap_for(&kek, &passkey_wrap_id(b"c"), 0).unwrap(), 2);
    let mut b = Vault::create("account-b").unwrap().0;
    assert!(matches!(
        b.open(&stored(&ck, 1)),
        Err(VaultError::Authentication { .. })
    ));
    assert!(matches!(
        Vault::unlock("account-b", &kek, &w),
        Err(VaultError::WrongKey)
    ));
}

#[test]
fn deleting_a_conversation_key_shreds_the_conversation() {
    let (mut v, _) = Vault::create(ACCOUNT).unwrap();
    let (conv, ck) = v.new_conversation().unwrap();
    let (_, m) = seal(&v, &conv, &[], "secret", 1);
    let m = stored(&m, 2);
    let ck = stored(&ck, 1);
    v.open(&ck).unwrap();
    assert!(matches!(
        v.open(&marker(&ck, 2, 3)).unwrap(),
        Opened::Deleted { .. }
    ));
    assert!(matches!(
        v.open(&m),
        Err(VaultError::MissingConversationKey(c)) if c == conv
    ));
    // And the marker cannot be undone by replaying the old key record.
    assert!(matches!(v.open(&ck), Err(VaultError::Undeleted { .. })));
}

#[test]
fn markers_and_wrappings_in_the_feed_cannot_poison_the_ledger() {
    let (mut v, code) = Vault::create(ACCOUNT).unwrap();
    let (conv, ck) = v.new_conversation().unwrap();
    let ck = stored(&ck, 1);
    let h1 = stored(&v.seal_header(&conv, &Header::new("one", 1), 0).unwrap(), 2);
    let wrap = stored(
        &v.wrap_for(&code.kek(ACCOUNT), RECOVERY_WRAP_ID, 0).unwrap(),
        3,
    );
    v.open(&ck).unwrap();
    v.open(&h1).unwrap();
    let huge = u64::MAX / 2;

    // A wrapping served at a huge version (the vault cannot open it here) and its marker:
    // nothing of either reaches the ledger.
    let mut forged = wrap.clone();
    forged.version = huge;
    assert!(matches!(v.open(&forged).unwrap(), Opened::Wrap { .. }));
    assert!(matches!(
        v.open(&marker(&wrap, huge, 4)).unwrap(),
        Opened::Deleted { .. }
    ));
    assert_eq!(v.ledger().seen(RECOVERY_WRAP_ID), None);

    // A forged marker at a huge version deletes the header on this device, but the next
    // genuine header (written by a device that never saw the marker) is accepted.
    v.open(&marker(&h1, huge, 5)).unwrap();
    assert_eq!(v.ledger().seen(&h1.id), Some(1));
    let h2 = stored(&v.seal_header(&conv, &Header::new("two", 2), 1).unwrap(), 6);
    assert!(matches!(v.open(&h2).unwrap(), Opened::Header { .. }));

    // Nor can a marker hide a rollback: after v2, a marker then v1 is still refused, and a
    // marker that is not above v2 is refused outright.
    v.open(&marker(&h2, huge, 7)).unwrap();
    assert!(matches!(
        v.open(&h1),
        Err(VaultError::Rollback {
            seen: 2,
            served: 1,
            ..
        })
    ));
    assert!(matches!(
        v.open(&marker(&h2, 2, 8)),
        Err(VaultError::StaleDeletion {
            seen: 2,
            claimed: 2,
            ..
        })
    ));
    // And the header it deleted does not come back.
    assert!(matches!(v.open(&h2), Err(VaultError::Undeleted { .. })));
}

#[test]
fn a_deleted_message_served_again_is_named_by_its_position() {
    let (mut v, _) = Vault::create(ACCOUNT).unwrap();
    let (conv, ck) = v.new_conversation().unwrap();
    v.open(&stored(&ck, 1)).unwrap();
    let (e1, m1) = seal(&v, &conv, &[], "first", 1);
    let (_, m2) = seal(&v, &conv, &[&e1], "second", 2);
    let m2 = stored(&m2, 3);
    v.open(&stored(&m1, 2)).unwrap();
    v.open(&m2).unwrap();
    // A marker alone is the server's word: the record served again is taken back.
    v.open(&marker(&m2, 2, 4)).unwrap();
    v.open(&m2).unwrap();
    // Once the user's removal accounts for the deletion, it is not.
    v.open(&marker(&m2, 2, 5)).unwrap();
    v.observe_removal(&m2.id);
    let replayed = v.open(&m2).err().unwrap();
    assert!(
        matches!(
            &replayed,
            VaultError::Chain(ChainError::Replayed { conv: c, position: 1 }) if *c == conv
        ),
        "{replayed}"
    );
}

#[test]
fn garbage_records_are_refused_without_panic() {
    let (mut v, _) = Vault::create(ACCOUNT).unwrap();
    let (conv, _) = v.new_conversation().unwrap();
    for id in [
        "",
        "ck.",
        "m.x.y",
        "wrap.pk.zz",
        "ch.0123",
        &format!("m.{conv}"),
    ] {
        let r = RecordOut {
            id: id.to_owned(),
            group: None,
            kind: "msg".into(),
            version: 1,
            seq: 1,
            ciphertext: Some(vec![1, 2, 3]),
        };
        assert!(v.open(&r).is_err());
    }
    for len in [0usize, 1, 24, 40, 41, 100] {
        let r = RecordOut {
            id: format!("m.{conv}.{}", "ab".repeat(16)),
            group: Some(conv.clone()),
            kind: "msg".into(),
            version: 1,
            seq: 1,
            ciphertext: Some(vec![1; len]),
        };
        assert!(v.open(&r).is_err());
    }
}

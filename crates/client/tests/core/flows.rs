//! The client core's flows, driven step by step against the real account server (SQLite) with
//! a software passkey: what every client (CLI, browser, proxy) runs. Being sans-I/O, a flow
//! can be paused between steps, which is how races with another device are set up exactly.

use crate::{server, signed_up, texts, turn, Device};
use sotto_api::{routes, RecordOut};
use sotto_client::{
    delete_message, Answer, ClientError, DeleteConversation, EditHeader, Flow, Method, Pull,
    Recover, Request, Response, RotateRecovery, SignIn, SignUp, SignedIn, Step, Unlock, VaultFlow,
    Writes,
};
use sotto_vault::{RecordName, Role};

#[tokio::test]
async fn two_devices_fold_each_others_changes_and_every_deletion_marker() {
    let s = server().await;
    let (mut laptop, mut a, code) = signed_up(&s, "laptop").await;

    let first = turn(&[
        (Role::User, "first question", 10),
        (Role::Assistant, "first answer", 11),
    ]);
    let writes = Writes::save_turn(&mut a, None, first).unwrap();
    let (conv, ids) = laptop.on(&mut a, writes).await.unwrap();
    assert_eq!(ids.len(), 2);

    // A new device comes in through the recovery code and registers its own passkey.
    let mut phone = Device::new(&s);
    let mut b = phone
        .run(Recover::new(&code, "phone").unwrap().bearer())
        .await
        .unwrap();
    assert_eq!(b.session.account_id, a.session.account_id);
    // Two passkey wrappings, the recovery wrapping, key, header, two messages.
    assert_eq!(phone.on(&mut b, Pull::new()).await.unwrap(), 7);
    assert_eq!(b.history.conversations()[&conv].title(), "first question");
    assert_eq!(texts(&b, &conv), ["first question", "first answer"]);
    assert_eq!(
        phone.on(&mut b, Pull::new()).await.unwrap(),
        0,
        "nothing new"
    );

    // Incremental: one message added, one deleted (its removal, then its record), the header
    // renamed.
    let more = turn(&[(Role::User, "second question", 12)]);
    let more = Writes::save_turn(&mut a, Some(&conv), more);
    laptop.on(&mut a, more.unwrap()).await.unwrap();
    for _ in 0..2 {
        let delete = delete_message(&mut a, &conv, &ids[1]).unwrap();
        laptop.on(&mut a, delete).await.unwrap();
    }
    let edit = EditHeader::new(&conv, Some("renamed"), None, 20);
    laptop.on(&mut a, edit).await.unwrap();
    assert_eq!(phone.on(&mut b, Pull::new()).await.unwrap(), 4);
    assert_eq!(texts(&b, &conv), ["first question", "second question"]);
    assert_eq!(b.history.conversations()[&conv].title(), "renamed");

    // A header's deletion marker clears it; the conversation's clears everything.
    let header = RecordName::ConversationHeader { conv: conv.clone() }.id();
    let raw =
        Request::new(Method::Delete, routes::record(&header)).authorized(a.session.token.as_ref());
    assert_eq!(laptop.send(raw).await.status, 200);
    phone.on(&mut b, Pull::new()).await.unwrap();
    assert!(b.history.conversations()[&conv].header.is_none());
    assert_eq!(b.history.conversations()[&conv].title(), "(untitled)");
    let removed = laptop
        .on(&mut a, DeleteConversation::new(&conv))
        .await
        .unwrap();
    assert!(removed >= 3, "{removed}");
    assert!(!a.history.conversations().contains_key(&conv));
    phone.on(&mut b, Pull::new()).await.unwrap();
    assert!(b.history.conversations().is_empty());

    // The phone's own passkey signs in and unlocks from now on.
    match phone.run(SignIn::new().bearer()).await.unwrap() {
        SignedIn::Unlocked(u) => assert_eq!(u.session.account_id, a.session.account_id),
        SignedIn::Locked(_) => panic!("the passkey has a PRF output"),
    }
}

#[tokio::test]
async fn a_header_edit_that_loses_a_race_rereads_merges_and_keeps_both_fields() {
    let s = server().await;
    let (mut laptop, mut a, code) = signed_up(&s, "laptop").await;
    let mut phone = Device::new(&s);
    let mut b = phone
        .run(Recover::new(&code, "phone").unwrap().bearer())
        .await
        .unwrap();
    let start = Writes::start_conversation(&mut a, "draft", 1).unwrap();
    let conv = laptop.on(&mut a, start).await.unwrap();

    // The laptop reads the header and is about to write its new title...
    let mut slow = EditHeader::new(&conv, Some("laptop title"), None, 100);
    let mut step = slow.next(&mut a, None).unwrap();
    let mut writes_seen = 0;
    loop {
        if let Step::Send(req) = &step {
            if req.method == Method::Put {
                writes_seen += 1;
                if writes_seen == 1 {
                    // ...when the phone files the conversation into a folder first.
                    let fast = EditHeader::new(&conv, None, Some("work"), 101);
                    phone.on(&mut b, fast).await.unwrap();
                }
            }
        }
        let answer = laptop.carry(step).await;
        step = slow.next(&mut a, Some(answer)).unwrap();
        if let Step::Done(header) = step {
            assert_eq!(header.title, "laptop title");
            assert_eq!(header.folder, "work", "the phone's edit is kept");
            break;
        }
    }
    assert_eq!(
        writes_seen, 2,
        "the first write conflicted and was retried once"
    );
    phone.on(&mut b, Pull::new()).await.unwrap();
    let h = b.history.conversations()[&conv].header.clone().unwrap();
    assert_eq!(
        (h.title.as_str(), h.folder.as_str()),
        ("laptop title", "work")
    );
}

#[tokio::test]
async fn a_passkey_without_prf_signs_in_locked_and_the_recovery_code_unlocks() {
    let s = server().await;
    let mut dev = Device::new(&s);
    let signed_up = dev
        .run(SignUp::new("Ada", "laptop").unwrap().bearer())
        .await
        .unwrap();
    dev.no_prf = true;
    let session = match dev.run(SignIn::new().bearer()).await.unwrap() {
        SignedIn::Locked(session) => session,
        SignedIn::Unlocked(_) => panic!("no PRF output cannot unlock"),
    };
    let wrong = sotto_vault::RecoveryCode::generate().unwrap();
    let err = dev
        .run(Unlock::with_recovery(session, &wrong))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ClientError::Vault(_)), "{err}");

    let session = match dev.run(SignIn::new().bearer()).await.unwrap() {
        SignedIn::Locked(session) => session,
        SignedIn::Unlocked(_) => panic!("no PRF output cannot unlock"),
    };
    let u = dev
        .run(Unlock::with_recovery(session, &signed_up.recovery_code))
        .await
        .unwrap();
    assert_eq!(u.session.account_id, signed_up.unlocked.session.account_id);
}

#[tokio::test]
async fn a_rotated_recovery_code_replaces_the_old_one() {
    let s = server().await;
    let (mut dev, mut u, code) = signed_up(&s, "laptop").await;
    let new = dev
        .on(&mut u, RotateRecovery::new().unwrap())
        .await
        .unwrap();

    let mut other = Device::new(&s);
    let old = Recover::new(&code, "x").unwrap().bearer();
    let err = other.run(old).await.err().unwrap();
    assert_eq!(err.status(), Some(401), "{err}");
    let r = other
        .run(Recover::new(&new.to_text(), "x").unwrap().bearer())
        .await
        .unwrap();
    assert_eq!(r.session.account_id, u.session.account_id);
}

/// A rotation the server refuses (here: another one landed between reading the wrapping's
/// version and writing it) changes nothing and says so: the code current at that moment (the
/// other rotation's) signs in and unlocks, the one before it no longer does.
#[tokio::test]
async fn a_refused_rotation_says_the_old_code_still_works() {
    let s = server().await;
    let (mut dev, mut u, code) = signed_up(&s, "laptop").await;
    let mut slow = RotateRecovery::new().unwrap();
    let mut step = slow.next(&mut u, None).unwrap();
    while !matches!(&step, Step::Send(r) if r.method == Method::Put && r.path == routes::RECOVERY) {
        let answer = dev.carry(step).await;
        step = slow.next(&mut u, Some(answer)).unwrap();
    }
    let current = dev
        .on(&mut u, RotateRecovery::new().unwrap())
        .await
        .unwrap();
    let answer = dev.carry(step).await;
    let err = slow.next(&mut u, Some(answer)).err().unwrap();
    assert!(
        matches!(&err, ClientError::RecoveryKept(e) if e.status() == Some(409)),
        "{err}"
    );
    assert!(err.to_string().contains("the old one still works"), "{err}");

    let mut other = Device::new(&s);
    let r = other
        .run(Recover::new(&current.to_text(), "x").unwrap().bearer())
        .await
        .unwrap();
    assert_eq!(r.session.account_id, u.session.account_id);
    let first = Recover::new(&code, "y").unwrap();
    assert_eq!(
        other.run(first.bearer()).await.err().unwrap().status(),
        Some(401)
    );
}

#[tokio::test]
async fn flows_fail_closed_on_answers_they_did_not_ask_for() {
    let mut flow = SignUp::new("Ada", "laptop").unwrap();
    let Step::Send(first) = flow.next(None).unwrap() else {
        panic!("sign-up starts with a request");
    };
    assert_eq!(
        (first.method, first.path.as_str()),
        (Method::Post, routes::REGISTER_START)
    );
    let garbage = Answer::Http(Response::new(200, b"<html>".to_vec()));
    assert!(matches!(
        flow.next(Some(garbage)),
        Err(ClientError::Malformed { status: 200 })
    ));
    assert!(
        matches!(flow.next(None), Err(ClientError::State(_))),
        "a failed flow is spent"
    );

    let mut flow = SignIn::new();
    flow.next(None).unwrap();
    let refused = br#"{"error":"rate_limited","message":"slow down"}"#.to_vec();
    let err = flow
        .next(Some(Answer::Http(Response::new(429, refused))))
        .err()
        .unwrap();
    assert_eq!(err.server_code(), Some("rate_limited"));

    let mut flow = SignIn::new();
    flow.next(None).unwrap();
    let err = flow.next(None).err().unwrap();
    assert!(matches!(err, ClientError::State(_)), "{err}");

    assert!(matches!(
        Recover::new("not a recovery code", "x").err().unwrap(),
        ClientError::RecoveryCode(_)
    ));
}

#[test]
fn record_names_parse_back_from_the_ids_they_make() {
    let hex = |c: char| c.to_string().repeat(32);
    let names = [
        RecordName::RecoveryWrap,
        RecordName::PasskeyWrap { handle: hex('a') },
        RecordName::ConversationKey { conv: hex('b') },
        RecordName::ConversationHeader { conv: hex('c') },
        RecordName::Message {
            conv: hex('d'),
            msg: hex('e'),
        },
    ];
    for name in names {
        assert_eq!(RecordName::parse(&name.id()).unwrap(), name);
    }
    let wrap = sotto_api::passkey_wrap_id(b"credential");
    assert_eq!(RecordName::parse(&wrap).unwrap().id(), wrap);
    let out = RecordOut {
        id: "m.x.y".into(),
        group: None,
        kind: "message".into(),
        version: 1,
        seq: 1,
        ciphertext: None,
    };
    assert!(RecordName::parse(&out.id).is_err());
}

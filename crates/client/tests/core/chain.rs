//! The history's integrity against a hostile server, end to end: the client core's pull and
//! writes against the real account server (SQLite) with a software passkey, the change feed
//! edited in flight by the test (being sans-I/O, a pull can be answered with anything). A
//! message dropped, held back, replaced by a forged deletion marker or replayed after its
//! deletion is refused, naming the conversation and the position; concurrent appends fork
//! and join; an answer cut short reads back as incomplete on another device.

use crate::{server, signed_up, texts, turn, Device};
use sotto_api::{routes, Changes, RecordOut};
use sotto_client::{delete_message, ClientError, Method, Pull, Recover, Request, Unlocked, Writes};
use sotto_server::testing::TestServer;
use sotto_vault::{ChainError, Incomplete, RecordName, Role, VaultError};

async fn second_device(s: &TestServer, code: &str, name: &str) -> (Device, Unlocked) {
    let mut dev = Device::new(s);
    let u = dev
        .run(Recover::new(code, name).unwrap().bearer())
        .await
        .unwrap();
    (dev, u)
}

/// A change feed edit: the server leaves out record `id`.
fn without(id: &str) -> impl FnMut(&mut Changes) + '_ {
    move |page| page.records.retain(|r| r.id != id)
}

/// What refused a pull whose change feed `edit` rewrote: the refused record's id and the break
/// in its conversation's chain.
async fn chain_refusal(
    dev: &mut Device,
    u: &mut Unlocked,
    edit: impl FnMut(&mut Changes),
) -> (String, ChainError) {
    match dev.pull_through(u, edit).await {
        Err(ClientError::Refused {
            id,
            reason: VaultError::Chain(c),
        }) => (id, c),
        Err(e) => panic!("not a chain refusal: {e}"),
        Ok(_) => panic!("the pull was accepted"),
    }
}

#[tokio::test]
async fn a_dropped_reordered_or_replayed_message_is_named() {
    let s = server().await;
    let (mut laptop, mut a, code) = signed_up(&s, "laptop").await;
    let first = turn(&[(Role::User, "q1", 10), (Role::Assistant, "a1", 11)]);
    let writes = Writes::save_turn(&mut a, None, first).unwrap();
    let (conv, mut ids) = laptop.on(&mut a, writes).await.unwrap();
    let second = turn(&[(Role::User, "q2", 12), (Role::Assistant, "a2", 13)]);
    let writes = Writes::save_turn(&mut a, Some(&conv), second).unwrap();
    ids.extend(laptop.on(&mut a, writes).await.unwrap().1);
    let record = |i: usize| {
        RecordName::Message {
            conv: conv.clone(),
            msg: ids[i].clone(),
        }
        .id()
    };
    let at = |position| ChainError::Missing {
        conv: conv.clone(),
        position,
    };

    // Dropped: the server leaves out the first answer; the question after it names the gap,
    // and nothing of the refused pull is kept.
    let (mut phone, mut b) = second_device(&s, &code, "phone").await;
    let dropped = record(1);
    let refused = chain_refusal(&mut phone, &mut b, without(&dropped)).await;
    assert_eq!(refused, (record(2), at(1)));
    assert!(b.history.conversations().is_empty());

    // Reordered: served newest first, the conversation reads in its own order; served with
    // the first answer held back for a later pull, the first pull is refused at the gap.
    phone
        .pull_through(&mut b, |page| page.records.reverse())
        .await
        .unwrap();
    assert_eq!(texts(&b, &conv), ["q1", "a1", "q2", "a2"]);
    let (mut tablet, mut t) = second_device(&s, &code, "tablet").await;
    let held_back = record(1);
    let refused = chain_refusal(&mut tablet, &mut t, without(&held_back)).await;
    assert_eq!(refused.1, at(1));

    // Forged deletion: the server turns the second question into a marker, which no removal
    // of the user's accounts for.
    let forged = record(2);
    let refused = chain_refusal(&mut tablet, &mut t, |page| {
        for r in page.records.iter_mut().filter(|r| r.id == forged) {
            r.ciphertext = None;
            r.version += 1;
        }
    })
    .await;
    assert_eq!(refused, (record(3), at(2)));
    // Served honestly again, the same device takes the whole conversation: the forged marker
    // left nothing behind.
    tablet.on(&mut t, Pull::new()).await.unwrap();
    assert_eq!(texts(&t, &conv), ["q1", "a1", "q2", "a2"]);

    // Replayed: the user deletes the first answer; the phone sees it go. The server then
    // serves the old record again: refused, by position.
    let old_answer: RecordOut =
        serde_json::from_slice(&laptop.send(raw_get(&a, &record(1))).await.body).unwrap();
    let delete = delete_message(&mut a, &conv, &ids[1]).unwrap();
    laptop.on(&mut a, delete).await.unwrap();
    assert_eq!(texts(&a, &conv), ["q1", "q2", "a2"]);
    phone.on(&mut b, Pull::new()).await.unwrap();
    assert_eq!(texts(&b, &conv), ["q1", "q2", "a2"]);
    let replayed = RecordOut {
        seq: 1_000,
        ..old_answer.clone()
    };
    let refused = chain_refusal(&mut phone, &mut b, |page| {
        page.records.push(replayed.clone())
    })
    .await;
    assert_eq!(
        refused,
        (
            record(1),
            ChainError::Replayed {
                conv: conv.clone(),
                position: 1
            }
        )
    );
    // A device that never saw the deletion holds the removal: the replayed record stays
    // hidden there.
    let (mut other, mut o) = second_device(&s, &code, "other").await;
    other
        .pull_through(&mut o, |page| {
            page.records.retain(|r| r.id != old_answer.id);
            page.records.push(old_answer.clone());
        })
        .await
        .unwrap();
    assert_eq!(texts(&o, &conv), ["q1", "q2", "a2"]);
    // Honestly served, everything reads the same everywhere.
    phone.on(&mut b, Pull::new()).await.unwrap();
    assert_eq!(texts(&b, &conv), ["q1", "q2", "a2"]);
}

fn raw_get(u: &Unlocked, id: &str) -> Request {
    Request::new(Method::Get, routes::record(id)).authorized(u.session.token.as_ref())
}

#[tokio::test]
async fn concurrent_appends_fork_and_the_next_message_joins_them() {
    let s = server().await;
    let (mut laptop, mut a, code) = signed_up(&s, "laptop").await;
    let writes = Writes::save_turn(&mut a, None, turn(&[(Role::User, "q", 10)])).unwrap();
    let (conv, _) = laptop.on(&mut a, writes).await.unwrap();
    let (mut phone, mut b) = second_device(&s, &code, "phone").await;
    phone.on(&mut b, Pull::new()).await.unwrap();

    // Both append after "q" without seeing the other's message: a fork, accepted.
    let from_laptop = Writes::save_turn(&mut a, Some(&conv), turn(&[(Role::User, "laptop", 12)]));
    let (_, laptop_ids) = laptop.on(&mut a, from_laptop.unwrap()).await.unwrap();
    let from_phone = Writes::save_turn(&mut b, Some(&conv), turn(&[(Role::User, "phone", 11)]));
    phone.on(&mut b, from_phone.unwrap()).await.unwrap();
    for (dev, u) in [(&mut laptop, &mut a), (&mut phone, &mut b)] {
        dev.on(u, Pull::new()).await.unwrap();
        assert_eq!(texts(u, &conv), ["q", "phone", "laptop"]);
    }

    // The laptop's next message follows both sides, so dropping either is caught.
    let joined = Writes::save_turn(&mut a, Some(&conv), turn(&[(Role::User, "joined", 13)]));
    laptop.on(&mut a, joined.unwrap()).await.unwrap();
    phone.on(&mut b, Pull::new()).await.unwrap();
    assert_eq!(texts(&b, &conv), ["q", "phone", "laptop", "joined"]);
    let (mut tablet, mut t) = second_device(&s, &code, "tablet").await;
    let dropped = RecordName::Message {
        conv: conv.clone(),
        msg: laptop_ids[0].clone(),
    }
    .id();
    let refused = chain_refusal(&mut tablet, &mut t, without(&dropped)).await;
    assert_eq!(
        refused.1,
        ChainError::Missing {
            conv: conv.clone(),
            position: 1
        }
    );
}

#[tokio::test]
async fn a_truncated_answer_is_saved_and_read_back_as_incomplete() {
    let s = server().await;
    let (mut laptop, mut a, code) = signed_up(&s, "laptop").await;
    let mut cut = turn(&[
        (Role::User, "tell me everything", 10),
        (Role::Assistant, "Once upon a", 11),
        (Role::User, "go on", 12),
        (Role::Assistant, "and then the con", 13),
        (Role::User, "thanks", 14),
        (Role::Assistant, "You're welcome.", 15),
    ]);
    cut[1].incomplete = Some(Incomplete::Length);
    cut[3].incomplete = Some(Incomplete::Interrupted);
    let writes = Writes::save_turn(&mut a, None, cut).unwrap();
    let (conv, _) = laptop.on(&mut a, writes).await.unwrap();

    let (mut phone, mut b) = second_device(&s, &code, "phone").await;
    phone.on(&mut b, Pull::new()).await.unwrap();
    let read: Vec<(String, Option<Incomplete>)> = b.history.conversations()[&conv]
        .messages()
        .map(|(_, m)| (m.content.clone(), m.incomplete))
        .collect();
    assert_eq!(
        read,
        [
            ("tell me everything".to_owned(), None),
            ("Once upon a".to_owned(), Some(Incomplete::Length)),
            ("go on".to_owned(), None),
            ("and then the con".to_owned(), Some(Incomplete::Interrupted)),
            ("thanks".to_owned(), None),
            ("You're welcome.".to_owned(), None),
        ]
    );
}

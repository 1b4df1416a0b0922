//! The browser's flows, natively, through the same JSON steps and answers the page's driver
//! (web/src/drive.ts) exchanges, against the real account server (SQLite, on a loopback port)
//! with cookie sessions as a browser holds them, and a software authenticator with PRF:
//! sign-up, passkey sign-in, the recovery code on a new device and on a passkey without PRF,
//! passkeys, a new recovery code, turns, header edits racing another device, deletions,
//! tampered, moved and rolled-back records (the test plays the hostile server by editing its
//! database), and signing out under a running flow. No step carries the session token.

use serde_json::{json, Value};
use sotto_api::b64;
use sotto_client::ClientError;
use sotto_vault::VaultError;
use sotto_web::flows::{ClientCore, FlowCore};
use sotto_web::testing::{Browser, Server};
use sotto_web::WebError;

/// WebAuthn JSON as passkey.ts builds it (no PRF results).
fn credential(id: &[u8]) -> Value {
    json!({"id": b64::encode(id), "rawId": b64::encode(id), "type": "public-key", "response": {}, "clientExtensionResults": {}})
}

fn sign_up(server: &mut Server, browser: &mut Browser) -> (ClientCore, String) {
    let mut done = browser
        .run(server, FlowCore::sign_up("Ada", "Test browser").unwrap())
        .unwrap();
    let code = done.reveal_recovery_code().unwrap().to_string();
    assert!(
        matches!(done.reveal_recovery_code(), Err(WebError::State(_))),
        "shown once"
    );
    let client = done.take_client().unwrap();
    assert!(done.take_client().is_err(), "taken once");
    (client, code)
}

fn conversations(client: &ClientCore) -> Vec<Value> {
    serde_json::from_str(&client.conversations_json().unwrap()).unwrap()
}

fn opened(client: &ClientCore, conv: &str) -> Value {
    serde_json::from_str(&client.conversation_json(conv).unwrap().unwrap()).unwrap()
}

fn said(client: &ClientCore, conv: &str) -> Vec<String> {
    opened(client, conv)["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["message"]["content"].as_str().unwrap().to_owned())
        .collect()
}

fn save(
    server: &mut Server,
    browser: &mut Browser,
    client: &ClientCore,
    conv: Option<&str>,
    turn: Value,
) -> (String, Vec<String>) {
    let done = browser
        .run(server, client.save_turn(conv, &turn.to_string()).unwrap())
        .unwrap();
    let saved: Value = serde_json::from_str(&done.saved_json().unwrap()).unwrap();
    let ids = saved["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_owned())
        .collect();
    (saved["conv"].as_str().unwrap().to_owned(), ids)
}

fn pull(
    server: &mut Server,
    browser: &mut Browser,
    client: &ClientCore,
) -> Result<usize, WebError> {
    browser.run(server, client.pull())?.count()
}

/// Saves a new conversation of one question, created at `at`, and its answer.
fn start(
    server: &mut Server,
    browser: &mut Browser,
    client: &ClientCore,
    q: &str,
    a: &str,
    at: u64,
) -> (String, Vec<String>) {
    let turn = json!([
        {"role": "user", "content": q, "created_at": at},
        {"role": "assistant", "content": a, "created_at": at + 1},
    ]);
    save(server, browser, client, None, turn)
}

/// Runs a flow that ends signed in and unlocked, and takes its client.
fn open(server: &mut Server, browser: &mut Browser, flow: FlowCore) -> ClientCore {
    browser.run(server, flow).unwrap().take_client().unwrap()
}

#[test]
fn sign_up_saves_turns_and_a_passkey_sign_in_opens_them_again() {
    let (mut server, mut a) = (Server::start(), Browser::new());
    let (client, code) = sign_up(&mut server, &mut a);
    let id: Vec<u8> = server
        .db()
        .query_row("SELECT id FROM accounts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        client.account().unwrap(),
        uuid::Uuid::from_slice(&id).unwrap().to_string()
    );
    assert_eq!(client.credential_id().unwrap(), a.passkey());
    let (conv, ids) = start(
        &mut server,
        &mut a,
        &client,
        "Where to eat in Lyon?",
        "Les Halles.",
        1_000,
    );
    assert_eq!(ids.len(), 2);
    save(
        &mut server,
        &mut a,
        &client,
        Some(&conv),
        json!([{"role": "user", "content": "And after?", "created_at": 1_005}]),
    );
    // A pull brings the history up to the server's change feed; the next has nothing new.
    pull(&mut server, &mut a, &client).unwrap();
    assert_eq!(pull(&mut server, &mut a, &client).unwrap(), 0);
    let list = conversations(&client);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], conv.as_str());
    assert_eq!(list[0]["title"], "Where to eat in Lyon?");
    assert_eq!(list[0]["folder"], "");
    assert_eq!(list[0]["updated_at"], 1_005);
    assert_eq!(
        said(&client, &conv),
        ["Where to eat in Lyon?", "Les Halles.", "And after?"]
    );
    assert_eq!(opened(&client, &conv)["messages"][0]["id"], ids[0].as_str());
    assert_eq!(client.conversation_json("nope").unwrap(), None);

    a.run(&mut server, client.sign_out().unwrap()).unwrap();
    assert_eq!(a.cookie, None);
    drop(client);
    let again = a.sign_in(&mut server);
    assert_eq!(
        said(&again, &conv),
        ["Where to eat in Lyon?", "Les Halles.", "And after?"]
    );

    // Nothing sent holds the recovery code, the user's words or a PRF result.
    let prfs: Vec<String> = a.prfs.iter().map(|p| b64::encode(p)).collect();
    assert!(!prfs.is_empty());
    for body in &server.bodies {
        let words = [code.as_str(), "Lyon", "Les Halles"];
        for secret in words.into_iter().chain(prfs.iter().map(String::as_str)) {
            assert!(!body.contains(secret), "a request body holds {secret}");
        }
    }
}

#[test]
fn the_recovery_code_registers_a_new_browsers_passkey_and_can_be_replaced() {
    let (mut server, mut a) = (Server::start(), Browser::new());
    let (client, code) = sign_up(&mut server, &mut a);
    let (conv, _) = start(&mut server, &mut a, &client, "hello", "hi", 10);

    // A typo is caught by the checksum before anything is sent.
    let mut typo: Vec<char> = code.chars().collect();
    typo[0] = if typo[0] == 'A' { 'B' } else { 'A' };
    let sent = server.bodies.len();
    assert!(matches!(
        FlowCore::recover(&typo.into_iter().collect::<String>(), "B"),
        Err(WebError::Client(ClientError::RecoveryCode(_)))
    ));
    assert_eq!(server.bodies.len(), sent);

    let mut b = Browser::new();
    let recover = FlowCore::recover(&code.to_lowercase(), "Browser B").unwrap();
    let on_b = open(&mut server, &mut b, recover);
    assert_eq!(on_b.credential_id().unwrap(), b.passkey());
    pull(&mut server, &mut b, &on_b).unwrap();
    assert_eq!(said(&on_b, &conv), ["hello", "hi"]);
    let info = b.run(&mut server, on_b.account_info().unwrap()).unwrap();
    let info: Value = serde_json::from_str(&info.account_json().unwrap()).unwrap();
    let mut names: Vec<&str> = info["passkeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["Browser B", "Test browser"]);

    // B's own passkey now signs in and unlocks.
    b.run(&mut server, on_b.sign_out().unwrap()).unwrap();
    let on_b = b.sign_in(&mut server);
    assert_eq!(said(&on_b, &conv), ["hello", "hi"]);

    // A new code: the old one no longer signs in, the new one does.
    let mut done = b.run(&mut server, on_b.rotate_recovery().unwrap()).unwrap();
    let new_code = done.reveal_recovery_code().unwrap().to_string();
    assert_ne!(new_code, code);
    let mut c = Browser::new();
    let refused = c
        .run(&mut server, FlowCore::recover(&code, "C").unwrap())
        .err()
        .unwrap();
    assert!(
        refused
            .to_string()
            .contains("does not belong to any account"),
        "{refused}"
    );
    let on_c = open(
        &mut server,
        &mut c,
        FlowCore::recover(&new_code, "C").unwrap(),
    );
    pull(&mut server, &mut c, &on_c).unwrap();
    assert_eq!(said(&on_c, &conv), ["hello", "hi"]);

    // Removing A's passkey stops it signing in; the last one cannot be removed.
    let a_id = a.passkey();
    b.run(&mut server, on_b.remove_passkey(&a_id).unwrap())
        .unwrap();
    assert!(a.run(&mut server, FlowCore::sign_in()).is_err());
    let c_id = c.passkey();
    b.run(&mut server, on_b.remove_passkey(&c_id).unwrap())
        .unwrap();
    let last = b
        .run(
            &mut server,
            on_b.remove_passkey(&on_b.credential_id().unwrap()).unwrap(),
        )
        .err()
        .unwrap();
    assert_eq!(
        last.to_string(),
        "the server said: this is the account's only passkey; add another before removing it \
         (last_passkey)"
    );
}

#[test]
fn a_passkey_without_prf_signs_in_locked_and_the_recovery_code_unlocks() {
    let (mut server, mut a) = (Server::start(), Browser::new());
    let (client, code) = sign_up(&mut server, &mut a);
    let (conv, _) = start(&mut server, &mut a, &client, "q", "a", 10);
    // A new code, so there is a valid code that is not this account's.
    let other = sign_up(&mut server, &mut Browser::new()).1;

    let mut e = a.synced();
    e.no_prf = true;
    let mut done = e.run(&mut server, FlowCore::sign_in()).unwrap();
    assert!(done.take_client().is_err());
    let locked = done.take_locked().unwrap();
    let wrong = e
        .run(
            &mut server,
            FlowCore::unlock_with_recovery(&locked, &other).unwrap(),
        )
        .err()
        .unwrap();
    assert!(
        matches!(
            wrong,
            WebError::Client(ClientError::Vault(VaultError::WrongKey))
        ),
        "{wrong}"
    );
    assert!(matches!(
        FlowCore::unlock_with_recovery(&locked, "not a code"),
        Err(WebError::RecoveryCode(_))
    ));
    let unlock = FlowCore::unlock_with_recovery(&locked, &code).unwrap();
    let on_e = open(&mut server, &mut e, unlock);
    assert_eq!(on_e.credential_id().unwrap(), a.passkey());
    pull(&mut server, &mut e, &on_e).unwrap();
    assert_eq!(said(&on_e, &conv), ["q", "a"]);
}

#[test]
fn answers_that_do_not_fit_the_step_are_refused_and_spend_the_flow() {
    let (mut server, mut a) = (Server::start(), Browser::new());
    let mut flow = FlowCore::sign_up("Ada", "pk").unwrap();
    let first: Value = serde_json::from_str(&flow.start().unwrap()).unwrap();
    assert_eq!(first["kind"], "http");
    assert_eq!(first["method"], "POST");
    assert_eq!(first["path"], "/v1/account/register/start");
    let (status, body) = server.handle(&mut a.cookie, &first);
    let create: Value = serde_json::from_str(&flow.answer_http(status, &body).unwrap()).unwrap();
    assert_eq!(create["kind"], "create_passkey");
    assert_eq!(create["name"], "pk");
    let id = b"passkey-x";
    assert!(matches!(
        flow.answer_created(&credential(id).to_string(), id, &[1; 31]),
        Err(WebError::Client(ClientError::Protocol(_)))
    ));
    assert!(matches!(
        flow.answer_created("{not json", id, &[1; 32]),
        Err(WebError::Json { .. })
    ));
    // Answering a passkey step with HTTP is a driver bug: the flow ends.
    assert!(matches!(
        flow.answer_http(200, b"{}"),
        Err(WebError::Client(ClientError::State(_)))
    ));
    assert!(matches!(
        flow.answer_created(&credential(id).to_string(), id, &[1; 32]),
        Err(WebError::State("this flow is over"))
    ));

    // A result the flow did not end with is not there to take.
    let (client, _) = sign_up(&mut server, &mut a);
    let done = a.run(&mut server, client.pull()).unwrap();
    assert!(done.saved_json().is_err());
    assert!(done.account_json().is_err());
    assert!(client.save_turn(None, r#"[{"role":"robot"}]"#).is_err());
    assert!(client.remove_passkey("not base64!").is_err());
}

#[test]
fn tampered_moved_and_rolled_back_records_are_refused() {
    let (mut server, mut a) = (Server::start(), Browser::new());
    let (client, _) = sign_up(&mut server, &mut a);
    let (conv, ids) = start(&mut server, &mut a, &client, "hi", "hello", 10);
    let msg_id = format!("m.{conv}.{}", ids[1]);
    let records = server.test.records();
    let original = records.ciphertext(&msg_id);
    // Each case reads with a new browser session that pulls from the start.
    let fresh = |server: &mut Server, a: &mut Browser| open(server, a, FlowCore::sign_in());

    // A flipped ciphertext byte: the whole pull is refused, naming the record.
    let mut flipped = original.clone();
    flipped[40] ^= 1;
    records.set(&msg_id, Some(&flipped), 1);
    let reader = fresh(&mut server, &mut a);
    let refused = pull(&mut server, &mut a, &reader).err().unwrap();
    assert!(
        refused
            .to_string()
            .starts_with(&format!("refusing the history: record {msg_id}")),
        "{refused}"
    );
    assert!(
        conversations(&reader).is_empty(),
        "nothing of a refused pull is kept"
    );
    records.set(&msg_id, Some(&original), 1);

    // The same message served under another message id.
    let moved = format!("m.{conv}.{}", "ab".repeat(16));
    records.copy(&msg_id, &moved);
    let reader = fresh(&mut server, &mut a);
    let refused = pull(&mut server, &mut a, &reader).err().unwrap();
    assert!(
        matches!(refused, WebError::Client(ClientError::Refused { ref id, .. }) if *id == moved),
        "{refused}"
    );
    records.delete(&moved);

    // Header v2 seen and remembered; a later client that restores the ledger refuses v1.
    let header_id = format!("ch.{conv}");
    let header_v1 = records.ciphertext(&header_id);
    a.run(&mut server, client.edit_header(&conv, Some("v2"), None, 20))
        .unwrap();
    let seen = a.sign_in(&mut server);
    assert_eq!(conversations(&seen)[0]["title"], "v2");
    let ledger = seen.ledger_json().unwrap();
    records.set(&header_id, Some(&header_v1), 1);
    let later = fresh(&mut server, &mut a);
    later.restore_ledger(&ledger).unwrap();
    let refused = pull(&mut server, &mut a, &later).err().unwrap();
    assert!(
        matches!(
            refused,
            WebError::Client(ClientError::Refused {
                reason: VaultError::Rollback { .. },
                ..
            })
        ),
        "{refused}"
    );
    // A client that has already accepted v1 cannot take in a ledger that saw v2: what it
    // accepted was a rollback.
    let behind = a.sign_in(&mut server);
    assert_eq!(conversations(&behind)[0]["title"], "hi");
    assert!(matches!(
        behind.restore_ledger(&ledger),
        Err(WebError::Vault(VaultError::Rollback { .. }))
    ));
}

#[test]
fn header_edits_racing_another_device_merge_and_deletions_reach_it() {
    let (mut server, mut a) = (Server::start(), Browser::new());
    let (client, _) = sign_up(&mut server, &mut a);
    let (conv, ids) = start(&mut server, &mut a, &client, "draft", "ok", 100);
    let mut b = a.synced();
    let other = b.sign_in(&mut server);

    // B reads the header to move it to a folder; A renames meanwhile; B's write conflicts,
    // and B merges over A's header and writes again.
    let mut moving = other.edit_header(&conv, None, Some("personal"), 150);
    let mut step = moving.start().unwrap().to_string();
    while !step.contains("PUT") {
        step = b.carry(&mut server, &mut moving, &step).unwrap();
    }
    a.run(
        &mut server,
        client.edit_header(&conv, Some("Holidays"), None, 200),
    )
    .unwrap();
    let mut puts = 0;
    while !step.contains(r#""kind":"done""#) {
        puts += usize::from(step.contains("PUT"));
        step = b.carry(&mut server, &mut moving, &step).unwrap();
    }
    assert_eq!(puts, 2, "one conflict, then the merged write");
    for (browser, c) in [(&mut a, &client), (&mut b, &other)] {
        pull(&mut server, browser, c).unwrap();
        let list = conversations(c);
        assert_eq!(
            (list[0]["title"].as_str(), list[0]["folder"].as_str()),
            (Some("Holidays"), Some("personal"))
        );
    }

    // A regenerated answer replaces the old one; deleting it twice is no error.
    save(
        &mut server,
        &mut a,
        &client,
        Some(&conv),
        json!([{"role": "assistant", "content": "better", "created_at": 300}]),
    );
    for _ in 0..2 {
        a.run(&mut server, client.delete_message(&conv, &ids[1]).unwrap())
            .unwrap();
    }
    pull(&mut server, &mut b, &other).unwrap();
    assert_eq!(said(&other, &conv), ["draft", "better"]);

    // A deletes the conversation: gone from A at once, from B at its next pull, and nothing
    // more can be saved to it.
    a.run(&mut server, client.delete_conversation(&conv))
        .unwrap();
    assert!(conversations(&client).is_empty());
    pull(&mut server, &mut b, &other).unwrap();
    assert!(conversations(&other).is_empty());
    let fresh = a.sign_in(&mut server);
    let refused = a
        .run(
            &mut server,
            fresh
                .save_turn(
                    Some(&conv),
                    &json!([{"role": "user", "content": "x", "created_at": 1}]).to_string(),
                )
                .unwrap(),
        )
        .err()
        .unwrap();
    assert!(
        matches!(refused, WebError::Client(ClientError::NoConversation(_))),
        "{refused}"
    );
}

#[test]
fn signing_out_wipes_the_keys_under_a_running_flow_and_deleting_the_account_leaves_nothing() {
    let (mut server, mut a) = (Server::start(), Browser::new());
    let (client, _) = sign_up(&mut server, &mut a);
    let mut flow = client.pull();
    let step = flow.start().unwrap().to_string();
    drop(client);
    assert!(matches!(
        a.carry(&mut server, &mut flow, &step),
        Err(WebError::SignedOut)
    ));

    let client = a.sign_in(&mut server);
    start(&mut server, &mut a, &client, "q", "a", 1);
    a.run(&mut server, client.delete_account().unwrap())
        .unwrap();
    for table in ["accounts", "credentials", "sessions", "records"] {
        assert_eq!(server.rows(table), 0, "{table}");
    }
    let refused = a.run(&mut server, FlowCore::sign_in()).err().unwrap();
    assert!(
        refused
            .to_string()
            .contains("this passkey is not registered with any account"),
        "{refused}"
    );
}

//! The browser's vault flows, natively, with a minimal stand-in for the server's record store
//! (it stores what it is given at `expected_version + 1`, as the real one does): sign-up,
//! passkey and recovery unlock, conversations, sync, conflicts, tampering and rollbacks.

use serde_json::{json, Value};
use sotto_api::{b64, PutRecord, RecordOut};
use sotto_web::vault::{edit_header, merge_headers, new_header, RecoveryCore, VaultCore};
use sotto_web::WebError;

const ACCOUNT: &str = "acct-7";
const PRF: [u8; 32] = [9; 32];
const CRED: &[u8] = b"credential-1";

/// The server side of a PUT: the record as a later GET or changes page serves it.
struct Server {
    seq: u64,
    records: Vec<RecordOut>,
}

impl Server {
    fn new() -> Self {
        Server {
            seq: 0,
            records: Vec::new(),
        }
    }

    /// Stores a `{"id","put",…}` answer from the vault; returns the stored record.
    fn put(&mut self, sealed_json: &str) -> RecordOut {
        let v: Value = serde_json::from_str(sealed_json).unwrap();
        let put: PutRecord = serde_json::from_value(v["put"].clone()).unwrap();
        self.seq += 1;
        let r = RecordOut {
            id: v["id"].as_str().unwrap().to_owned(),
            group: put.group,
            kind: put.kind,
            version: put.expected_version + 1,
            seq: self.seq,
            ciphertext: Some(put.ciphertext),
        };
        self.records.push(r.clone());
        r
    }

    fn all(&self) -> String {
        serde_json::to_string(&self.records).unwrap()
    }
}

fn json_of(r: &RecordOut) -> String {
    serde_json::to_string(r).unwrap()
}

fn field(json: &str, name: &str) -> String {
    let v: Value = serde_json::from_str(json).unwrap();
    v[name].as_str().unwrap().to_owned()
}

fn items(json: &str) -> Vec<Value> {
    serde_json::from_str(json).unwrap()
}

fn unlock(wrap: &RecordOut) -> VaultCore {
    VaultCore::unlock_with_prf(ACCOUNT, &PRF, CRED, &json_of(wrap)).unwrap()
}

/// Sign-up: a recovery code first (its verifier travels with the registration), then the
/// vault and its two wrappings.
fn sign_up(server: &mut Server) -> (VaultCore, String, RecordOut, RecordOut) {
    let mut recovery = RecoveryCore::generate().unwrap();
    let text = recovery.reveal().unwrap().to_string();
    let vault = VaultCore::create(ACCOUNT).unwrap();
    let wrap_pk = server.put(&vault.wrap_for_prf(&PRF, CRED, 0).unwrap());
    let wrap_rc = server.put(&vault.wrap_for_recovery(&recovery, 0).unwrap());
    (vault, text, wrap_pk, wrap_rc)
}

#[test]
fn recovery_values_are_the_vaults() {
    let mut recovery = RecoveryCore::generate().unwrap();
    let text = recovery.reveal().unwrap();
    assert!(matches!(recovery.reveal(), Err(WebError::State(_))));
    let verifier: Value = serde_json::from_str(&recovery.verifier_json().unwrap()).unwrap();
    let sign_in: Value = serde_json::from_str(&recovery.sign_in_json().unwrap()).unwrap();
    assert_eq!(verifier["lookup"], sign_in["lookup"]);
    let secret: [u8; 32] = b64::decode(sign_in["secret"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    assert_eq!(
        b64::encode(&sotto_vault::verifier_of(&secret)),
        verifier["verifier"].as_str().unwrap()
    );
    // The typed code derives the same values; a typo is caught locally.
    let typed = RecoveryCore::parse(&text.to_lowercase()).unwrap();
    assert_eq!(
        typed.sign_in_json().unwrap(),
        recovery.sign_in_json().unwrap()
    );
    let mut typo: Vec<char> = text.chars().collect();
    typo[0] = if typo[0] == 'A' { 'B' } else { 'A' };
    assert!(matches!(
        RecoveryCore::parse(&typo.into_iter().collect::<String>()),
        Err(WebError::RecoveryCode(_))
    ));
}

#[test]
fn passkey_and_recovery_unlock_the_same_history() {
    let mut server = Server::new();
    let (mut vault, text, wrap_pk, wrap_rc) = sign_up(&mut server);
    assert_eq!(wrap_pk.id, sotto_vault::passkey_wrap_id(CRED));
    assert_eq!(wrap_rc.id, sotto_vault::RECOVERY_WRAP_ID);

    let conv_json = vault.new_conversation().unwrap();
    let conv = field(&conv_json, "conv");
    assert_eq!(field(&conv_json, "id"), format!("ck.{conv}"));
    server.put(&conv_json);
    let header = new_header("Trip to Lyon", 1_000).unwrap();
    server.put(&vault.seal_header(&conv, &header, 0).unwrap());
    let question = json!({"role":"user","content":"Where to eat?","created_at":1_001});
    let answer = json!({"role":"assistant","content":"Les Halles.","created_at":1_002});
    for m in [&question, &answer] {
        let sealed = vault.seal_message(&conv, &m.to_string()).unwrap();
        assert_eq!(field(&sealed, "conv"), conv);
        server.put(&sealed);
    }

    // Another device with the passkey, and a new device with only the recovery code.
    let typed = RecoveryCore::parse(&text).unwrap();
    let mut devices = [
        unlock(&wrap_pk),
        VaultCore::unlock_with_recovery(ACCOUNT, &typed, &json_of(&wrap_rc)).unwrap(),
    ];
    for device in devices.iter_mut() {
        assert!(!device.has_conversation(&conv));
        let opened = items(&device.open_batch(&server.all()).unwrap());
        assert!(device.has_conversation(&conv));
        assert_eq!(opened.len(), 6);
        assert_eq!(opened[0]["type"], "conversation_key");
        assert_eq!(opened[0]["conv"], conv.as_str());
        let header = opened.iter().find(|i| i["type"] == "header").unwrap();
        assert_eq!(header["header"]["title"], "Trip to Lyon");
        assert_eq!(header["version"], 1);
        let said: Vec<&str> = opened
            .iter()
            .filter(|i| i["type"] == "message")
            .map(|i| i["message"]["content"].as_str().unwrap())
            .collect();
        assert_eq!(said, ["Where to eat?", "Les Halles."]);
        assert_eq!(opened.iter().filter(|i| i["type"] == "wrap").count(), 2);
    }
}

#[test]
fn wrong_keys_and_bad_inputs_are_refused() {
    let mut server = Server::new();
    let (_, _, wrap_pk, wrap_rc) = sign_up(&mut server);
    let refuse = |r: Result<VaultCore, WebError>| match r {
        Err(e) => e,
        Ok(_) => panic!("unlocked"),
    };
    let wrong = refuse(VaultCore::unlock_with_prf(
        ACCOUNT,
        &[8; 32],
        CRED,
        &json_of(&wrap_pk),
    ));
    assert!(matches!(
        wrong,
        WebError::Vault(sotto_vault::VaultError::WrongKey)
    ));
    let other_cred = refuse(VaultCore::unlock_with_prf(
        ACCOUNT,
        &PRF,
        b"credential-2",
        &json_of(&wrap_pk),
    ));
    assert!(matches!(
        other_cred,
        WebError::Vault(sotto_vault::VaultError::WrongKey)
    ));
    let other_account = refuse(VaultCore::unlock_with_prf(
        "acct-8",
        &PRF,
        CRED,
        &json_of(&wrap_pk),
    ));
    assert!(matches!(
        other_account,
        WebError::Vault(sotto_vault::VaultError::WrongKey)
    ));
    let short = refuse(VaultCore::unlock_with_prf(
        ACCOUNT,
        &PRF[..31],
        CRED,
        &json_of(&wrap_pk),
    ));
    assert!(matches!(short, WebError::PrfLength(31)));
    let another_code = RecoveryCore::generate().unwrap();
    let wrong = refuse(VaultCore::unlock_with_recovery(
        ACCOUNT,
        &another_code,
        &json_of(&wrap_rc),
    ));
    assert!(matches!(
        wrong,
        WebError::Vault(sotto_vault::VaultError::WrongKey)
    ));
    let garbage = refuse(VaultCore::unlock_with_prf(
        ACCOUNT,
        &PRF,
        CRED,
        "{\"id\":1}",
    ));
    assert!(matches!(garbage, WebError::Json { .. }));
}

#[test]
fn tampered_moved_and_rolled_back_records_are_refused() {
    let mut server = Server::new();
    let (mut vault, _, wrap_pk, _) = sign_up(&mut server);
    let conv_json = vault.new_conversation().unwrap();
    let conv = field(&conv_json, "conv");
    server.put(&conv_json);
    let h1 = new_header("v1", 10).unwrap();
    let header_v1 = server.put(&vault.seal_header(&conv, &h1, 0).unwrap());
    let msg = server.put(
        &vault
            .seal_message(&conv, r#"{"role":"user","content":"hi","created_at":11}"#)
            .unwrap(),
    );

    // A flipped ciphertext byte, and a message moved under another message id.
    let mut flipped = msg.clone();
    if let Some(c) = flipped.ciphertext.as_mut() {
        c[40] ^= 1;
    }
    let mut moved = msg.clone();
    moved.id = format!("m.{conv}.{}", "ab".repeat(16));
    let mut device = unlock(&wrap_pk);
    let ck = server
        .records
        .iter()
        .find(|r| r.id.starts_with("ck."))
        .cloned()
        .unwrap();
    let batch = serde_json::to_string(&[ck.clone(), flipped, moved]).unwrap();
    let opened = items(&device.open_batch(&batch).unwrap());
    assert_eq!(opened[0]["type"], "conversation_key");
    for item in &opened[1..] {
        assert_eq!(item["type"], "error");
        assert_eq!(item["code"], "authentication");
        assert!(item["message"]
            .as_str()
            .unwrap()
            .contains("failed authentication"));
    }

    // Header v2 seen and remembered; a later session that restores the ledger refuses v1.
    let h2 = edit_header(&h1, Some("v2"), None, 20).unwrap();
    server.put(&vault.seal_header(&conv, &h2, 1).unwrap());
    let mut device = unlock(&wrap_pk);
    let opened = items(&device.open_batch(&server.all()).unwrap());
    // Only the latest copy of the header is opened.
    let headers: Vec<&Value> = opened.iter().filter(|i| i["type"] == "header").collect();
    assert_eq!(headers.len(), 1);
    assert_eq!(headers[0]["version"], 2);
    assert_eq!(headers[0]["header"]["title"], "v2");
    let ledger = device.ledger_json().unwrap();

    let mut later = unlock(&wrap_pk);
    later.restore_ledger(&ledger).unwrap();
    let stale = serde_json::to_string(&[ck.clone(), header_v1.clone()]).unwrap();
    let opened = items(&later.open_batch(&stale).unwrap());
    assert_eq!(opened[1]["type"], "error");
    assert_eq!(opened[1]["code"], "rollback");
    // A session that has already accepted v1 cannot take in a ledger that saw v2: what it
    // accepted was a rollback.
    let mut behind = unlock(&wrap_pk);
    items(&behind.open_batch(&stale).unwrap());
    assert!(matches!(
        behind.restore_ledger(&ledger),
        Err(WebError::Vault(sotto_vault::VaultError::Rollback { .. }))
    ));
}

#[test]
fn concurrent_header_edits_merge_and_deletions_are_reported() {
    let mut server = Server::new();
    let (mut vault, _, wrap_pk, _) = sign_up(&mut server);
    let conv_json = vault.new_conversation().unwrap();
    let conv = field(&conv_json, "conv");
    server.put(&conv_json);
    let base = new_header("draft", 100).unwrap();
    server.put(&vault.seal_header(&conv, &base, 0).unwrap());

    // Device A renames and writes version 2 first; device B moved it to a folder from the
    // same base, gets a conflict, merges with the server's header and writes version 3.
    let a = edit_header(&base, Some("Holidays"), None, 200).unwrap();
    server.put(&vault.seal_header(&conv, &a, 1).unwrap());
    let b = edit_header(&base, None, Some("personal"), 150).unwrap();
    let merged = merge_headers(&a, &b).unwrap();
    assert_eq!(merged.as_str(), merge_headers(&b, &a).unwrap().as_str());
    server.put(&vault.seal_header(&conv, &merged, 2).unwrap());

    let mut device = unlock(&wrap_pk);
    let opened = items(&device.open_batch(&server.all()).unwrap());
    let header = opened.iter().find(|i| i["type"] == "header").unwrap();
    assert_eq!(header["version"], 3);
    assert_eq!(header["header"]["title"], "Holidays");
    assert_eq!(header["header"]["folder"], "personal");

    // The server deletes the conversation: its key's deletion marker names it.
    let tomb = RecordOut {
        id: format!("ck.{conv}"),
        group: Some(conv.clone()),
        kind: "conv-key".into(),
        version: 2,
        seq: 99,
        ciphertext: None,
    };
    let opened = items(
        &device
            .open_batch(&serde_json::to_string(&[tomb]).unwrap())
            .unwrap(),
    );
    assert_eq!(opened[0]["type"], "deleted");
    assert_eq!(opened[0]["conv"], conv.as_str());
    assert!(!device.has_conversation(&conv));
    assert!(matches!(
        device.seal_message(&conv, r#"{"role":"user","content":"x","created_at":1}"#),
        Err(WebError::Vault(
            sotto_vault::VaultError::MissingConversationKey(_)
        ))
    ));
}

//! The keyring file: round trips, permissions, passphrases, counters, and hostile content.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use passkey_crypto::coset::iana;
use passkey_crypto::rust_crypto::RustCryptoBackend;
use passkey_crypto::{CryptoBackend as _, Pkcs8 as _};
use serde_json::Value;
use sotto_authenticator::{Error, Keyring};
use webauthn_rs::prelude::WebauthnError;

use crate::common::{local_prf, log_in, register, with_alice, LOCAL_ORIGIN, NOW};

const SALT: [u8; 32] = [3u8; 32];
const PASSPHRASE: &str = "correct horse battery staple";

/// A keyring with two credentials registered on a real relying party.
async fn two_credentials() -> (Keyring, Vec<Vec<u8>>) {
    let (rp, mut keyring, (_, a, _)) = with_alice(&SALT).await;
    let (_, b, _) = register(&rp, &mut keyring, LOCAL_ORIGIN, "bob", &SALT, NOW + 1).await;
    (keyring, vec![a.credential_id, b.credential_id])
}

async fn prfs(keyring: &mut Keyring, ids: &[Vec<u8>]) -> Vec<[u8; 32]> {
    let mut out = Vec::new();
    for id in ids {
        out.push(local_prf(keyring, id, &SALT).await);
    }
    out
}

/// `name` in a new folder, removed when the folder is dropped.
fn temp_path(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    (dir, path)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

fn decode_err(bytes: &[u8], passphrase: Option<&str>) -> Error {
    match Keyring::decode(bytes, passphrase) {
        Ok(_) => panic!("decode accepted {:?}", String::from_utf8_lossy(bytes)),
        Err(e) => e,
    }
}

fn load_err(path: &Path, passphrase: Option<&str>) -> Error {
    match Keyring::load(path, passphrase) {
        Ok(_) => panic!("load accepted {}", path.display()),
        Err(e) => e,
    }
}

#[tokio::test]
async fn clear_round_trip_keeps_credentials_prf_and_mode_0600() {
    let (mut keyring, ids) = two_credentials().await;
    let before = prfs(&mut keyring, &ids).await;
    let (_dir, path) = temp_path("config/sotto/passkeys.json");
    keyring.save(&path, None).expect("save");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().expect("parent")), 0o700);
    let text = fs::read_to_string(&path).expect("read");
    assert!(text.contains("\"kind\": \"none\""));
    assert!(
        text.contains("private_key_pkcs8"),
        "clear keyrings hold keys in the clear"
    );
    // Only the keyring is left in the directory (no temporary file).
    assert_eq!(
        fs::read_dir(path.parent().expect("parent"))
            .expect("ls")
            .count(),
        1
    );

    let mut loaded = Keyring::load(&path, None).expect("load");
    assert_eq!(loaded.credentials(), keyring.credentials());
    assert_eq!(prfs(&mut loaded, &ids).await, before);
    assert_ne!(before[0], before[1]);

    // Removing a credential makes it unusable here; the other one is untouched.
    assert!(loaded.remove("localhost", &ids[0]));
    assert!(!loaded.remove("localhost", &ids[0]));
    assert_eq!(loaded.credentials().len(), 1);
    assert!(matches!(
        loaded.prf("localhost", &ids[0], &SALT).await,
        Err(Error::UnknownCredential { .. })
    ));
    assert_eq!(prfs(&mut loaded, &ids[1..]).await, before[1..]);

    // A passphrase for a clear keyring is refused rather than silently ignored.
    assert!(matches!(
        load_err(&path, Some(PASSPHRASE)),
        Error::UnexpectedPassphrase
    ));
}

#[tokio::test]
async fn sealed_round_trip_and_passphrase_errors() {
    let (mut keyring, ids) = two_credentials().await;
    let before = prfs(&mut keyring, &ids).await;
    let (_dir, path) = temp_path("passkeys.json");
    keyring.save(&path, Some(PASSPHRASE)).expect("save sealed");
    assert_eq!(mode(&path), 0o600);
    let text = fs::read_to_string(&path).expect("read");
    assert!(text.contains("argon2id-xchacha20poly1305"));
    assert!(!text.contains("private_key_pkcs8"));
    for id in &ids {
        assert!(
            !text.contains(&URL_SAFE_NO_PAD.encode(id)),
            "credential id visible"
        );
    }

    let mut loaded = Keyring::load(&path, Some(PASSPHRASE)).expect("load sealed");
    assert_eq!(loaded.credentials(), keyring.credentials());
    assert_eq!(prfs(&mut loaded, &ids).await, before);

    assert!(matches!(load_err(&path, None), Error::PassphraseRequired));
    assert!(matches!(
        load_err(&path, Some("correct horse battery stapler")),
        Error::WrongPassphrase
    ));
    assert!(matches!(
        keyring.save(&path, Some("")),
        Err(Error::Seal { .. })
    ));

    // Altered ciphertext, nonce, and costs.
    let original: Value = serde_json::from_str(&text).expect("json");
    let mut altered = original.clone();
    let ciphertext = altered["sealing"]["ciphertext"]
        .as_str()
        .expect("str")
        .to_owned();
    let mut bytes = URL_SAFE_NO_PAD.decode(ciphertext).expect("b64");
    bytes[10] ^= 0x40;
    altered["sealing"]["ciphertext"] = URL_SAFE_NO_PAD.encode(&bytes).into();
    let altered_bytes = serde_json::to_vec(&altered).expect("json");
    assert!(matches!(
        decode_err(&altered_bytes, Some(PASSPHRASE)),
        Error::WrongPassphrase
    ));
    let mut altered = original.clone();
    altered["sealing"]["nonce"] = URL_SAFE_NO_PAD.encode([0u8; 12]).into();
    match decode_err(
        &serde_json::to_vec(&altered).expect("json"),
        Some(PASSPHRASE),
    ) {
        Error::Malformed { reason } => assert!(reason.contains("nonce"), "{reason}"),
        e => panic!("unexpected error: {e}"),
    }
    let mut altered = original;
    altered["sealing"]["m_cost_kib"] = (u32::MAX).into();
    assert!(matches!(
        decode_err(
            &serde_json::to_vec(&altered).expect("json"),
            Some(PASSPHRASE)
        ),
        Error::Kdf { .. }
    ));
}

#[tokio::test]
async fn group_or_other_access_is_refused_and_save_restores_0600() {
    let (keyring, _) = two_credentials().await;
    let (dir, path) = temp_path("passkeys.json");
    keyring.save(&path, None).expect("save");
    for loose in [0o640, 0o604, 0o660, 0o644] {
        fs::set_permissions(&path, fs::Permissions::from_mode(loose)).expect("chmod");
        let error = load_err(&path, None);
        assert!(
            matches!(error, Error::InsecurePermissions { mode, .. } if mode == loose),
            "{error}"
        );
        let message = error.to_string();
        assert!(message.contains("chmod 600"), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
    }
    keyring.save(&path, None).expect("save over a loose file");
    assert_eq!(mode(&path), 0o600);
    Keyring::load(&path, None).expect("load after save");

    assert!(matches!(
        load_err(&dir.path().join("absent.json"), None),
        Error::NotFound { .. }
    ));
    assert!(matches!(load_err(dir.path(), None), Error::NotAFile { .. }));
}

#[tokio::test]
async fn counter_is_persisted_and_a_stale_copy_is_refused_by_the_server() {
    let (rp, keyring, (_, _, mut passkey)) = with_alice(&SALT).await;
    let (_dir, path) = temp_path("passkeys.json");
    keyring.save(&path, Some(PASSPHRASE)).expect("save");
    let mut stale = Keyring::load(&path, Some(PASSPHRASE)).expect("load");

    let mut current = Keyring::load(&path, Some(PASSPHRASE)).expect("load");
    let mut counter = 0;
    for _ in 0..2 {
        let (_, credential, state) = log_in(&rp, &mut current, LOCAL_ORIGIN, &SALT, None).await;
        let result = rp
            .finish_discoverable_authentication_v2(&credential, state, &passkey)
            .expect("server verifies");
        assert!(result.counter() > counter);
        counter = result.counter();
        passkey.update_credential(&result);
        current.save(&path, Some(PASSPHRASE)).expect("save");
        current = Keyring::load(&path, Some(PASSPHRASE)).expect("reload");
        assert_eq!(current.credentials()[0].counter, counter);
    }

    // The copy loaded before those logins replays an old counter: the server refuses it.
    let (_, credential, state) = log_in(&rp, &mut stale, LOCAL_ORIGIN, &SALT, None).await;
    assert!(matches!(
        rp.finish_discoverable_authentication_v2(&credential, state, &passkey),
        Err(WebauthnError::CredentialPossibleCompromise)
    ));
}

#[tokio::test]
async fn truncated_garbage_and_malformed_files_are_refused_precisely() {
    let (keyring, _) = two_credentials().await;
    let clear = keyring.encode(None).expect("encode");
    let sealed = keyring.encode(Some(PASSPHRASE)).expect("encode sealed");

    // Every strict prefix is refused (never a panic, never a partial keyring).
    for len in 0..clear.len() {
        let error = decode_err(&clear[..len], None);
        assert!(
            matches!(error, Error::NotAKeyring { .. }),
            "prefix {len}: {error}"
        );
    }
    for len in (0..sealed.len()).step_by(7) {
        assert!(Keyring::decode(&sealed[..len], Some(PASSPHRASE)).is_err());
    }
    // Every single-byte corruption is either refused or still a valid keyring; none panics.
    for i in 0..clear.len() {
        let mut corrupted = clear.to_vec();
        corrupted[i] ^= 0x5a;
        let _ = Keyring::decode(&corrupted, None);
    }

    // Through the file edge: a truncated file names the problem.
    let (_dir, path) = temp_path("passkeys.json");
    keyring.save(&path, None).expect("save");
    fs::write(&path, &clear[..clear.len() / 2]).expect("truncate");
    match load_err(&path, None) {
        Error::NotAKeyring { reason } => assert!(reason.contains("not JSON"), "{reason}"),
        e => panic!("unexpected error: {e}"),
    }
    fs::write(&path, [0xffu8, 0x00, 0x13, 0x37]).expect("garbage");
    assert!(matches!(load_err(&path, None), Error::NotAKeyring { .. }));

    assert!(matches!(decode_err(b"{}", None), Error::NotAKeyring { .. }));
    assert!(matches!(
        decode_err(br#"{"format":"ssh-key","version":1}"#, None),
        Error::NotAKeyring { .. }
    ));
    assert!(matches!(
        decode_err(
            br#"{"format":"sotto-authenticator-keyring","version":2}"#,
            None
        ),
        Error::UnsupportedVersion {
            found: 2,
            supported: 1
        }
    ));
    assert!(matches!(
        decode_err(br#"{"format":"sotto-authenticator-keyring"}"#, None),
        Error::Malformed { .. }
    ));
    assert!(matches!(
        decode_err(
            br#"{"format":"sotto-authenticator-keyring","version":1,"sealing":{"kind":"rot13"}}"#,
            None
        ),
        Error::Malformed { .. }
    ));

    let original: Value = serde_json::from_slice(&clear).expect("json");
    let malformed = |edit: &dyn Fn(&mut Value)| -> String {
        let mut value = original.clone();
        edit(&mut value);
        match decode_err(&serde_json::to_vec(&value).expect("json"), None) {
            Error::Malformed { reason } => reason,
            e => panic!("unexpected error: {e}"),
        }
    };
    let reason = malformed(&|v| v["sealing"]["credentials"][1]["credential_id"] = "*&^".into());
    assert!(
        reason.contains("credential 1") && reason.contains("credential_id"),
        "{reason}"
    );
    let reason = malformed(&|v| v["sealing"]["credentials"][0]["hmac_secret"] = "AAAA".into());
    assert!(reason.contains("hmac_secret is 3 bytes"), "{reason}");
    let reason = malformed(&|v| v["sealing"]["credentials"][0]["user_handle"] = "".into());
    assert!(reason.contains("user_handle"), "{reason}");
    let reason = malformed(&|v| v["sealing"]["credentials"][0]["extra"] = 1.into());
    assert!(reason.contains("extra"), "{reason}");
    let reason = malformed(&|v| v["sealing"]["credentials"][0]["counter"] = (-1).into());
    assert!(
        reason.contains("counter") || reason.contains("-1"),
        "{reason}"
    );
    let reason = malformed(&|v| {
        let first = v["sealing"]["credentials"][0].clone();
        v["sealing"]["credentials"][1] = first;
    });
    assert!(reason.contains("duplicate"), "{reason}");
    let ed25519 = RustCryptoBackend
        .generate_key(iana::Algorithm::EdDSA)
        .expect("ed25519 key")
        .to_pkcs8()
        .expect("pkcs8");
    let reason = malformed(&|v| {
        v["sealing"]["credentials"][0]["private_key_pkcs8"] =
            URL_SAFE_NO_PAD.encode(&ed25519).into()
    });
    assert!(reason.contains("private_key_pkcs8"), "{reason}");
    let reason = malformed(&|v| {
        v["sealing"]["credentials"][0]["private_key_pkcs8"] =
            URL_SAFE_NO_PAD.encode([1u8; 40]).into()
    });
    assert!(reason.contains("PKCS#8"), "{reason}");
}

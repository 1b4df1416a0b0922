//! Registration, discoverable login and PRF, verified by webauthn-rs as Sotto's server runs it.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::Value;
use sotto_authenticator::{Error, Keyring, PrfOutput};
use webauthn_rs::prelude::{DiscoverableKey, PublicKeyCredential, Uuid, WebauthnError};
use webauthn_rs::Webauthn;

use crate::common::{
    finish_registration, local_prf, local_rp, log_in, parse_assertion, register, relying_party,
    start_login, start_registration, with_alice, LOCAL_ORIGIN, NOW,
};

const SALT: [u8; 32] = [7u8; 32];
const OTHER_SALT: [u8; 32] = [9u8; 32];

fn prf_bytes(prf: &Option<PrfOutput>) -> [u8; 32] {
    match prf {
        Some(p) => *p.as_bytes(),
        None => panic!("the ceremony returned no PRF output"),
    }
}

/// The PRF output must not appear in what is sent to the server, in any common encoding.
fn assert_prf_absent(response: &Value, prf: &[u8; 32]) {
    let text = serde_json::to_string(response).expect("response serializes");
    for encoded in [
        URL_SAFE_NO_PAD.encode(prf),
        STANDARD.encode(prf),
        hex::encode(prf),
    ] {
        assert!(
            !text.contains(&encoded),
            "PRF output {encoded} leaked into the response JSON"
        );
    }
    // A JSON byte array would be the other way to leak it.
    let as_array = serde_json::to_string(&prf.to_vec()).expect("array serializes");
    assert!(!text.contains(&as_array[1..as_array.len() - 1]));
    assert!(
        response
            .get("clientExtensionResults")
            .and_then(|e| e.get("prf"))
            .and_then(|p| p.get("results"))
            .is_none(),
        "clientExtensionResults.prf.results must be removed"
    );
}

/// The server reads `credential` as `user`'s credential `id`.
fn assert_identifies(rp: &Webauthn, credential: &PublicKeyCredential, user: Uuid, id: &[u8]) {
    let (found_user, found_id) = rp
        .identify_discoverable_authentication(credential)
        .expect("server identifies the user");
    assert_eq!((found_user, found_id), (user, id));
}

#[tokio::test]
async fn register_and_discoverable_login_verify_on_webauthn_rs_with_stable_prf() {
    let (rp, mut keyring, (user, registration, mut passkey)) = with_alice(&SALT).await;

    assert_eq!(
        passkey.cred_id().as_slice(),
        registration.credential_id.as_slice()
    );
    let at_creation = prf_bytes(&registration.prf);
    assert_prf_absent(&registration.response, &at_creation);
    assert_eq!(
        registration.response["clientExtensionResults"]["prf"]["enabled"],
        Value::Bool(true)
    );
    let listed = keyring.credentials();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].user_handle, user.as_bytes().to_vec());
    assert_eq!(listed[0].rp_id, "localhost");
    assert_eq!(listed[0].counter, 0);

    let mut last_counter = 0;
    for round in 0..2 {
        let (assertion, credential, state) =
            log_in(&rp, &mut keyring, LOCAL_ORIGIN, &SALT, None).await;
        assert_identifies(&rp, &credential, user, &registration.credential_id);
        assert_eq!(assertion.user_handle, user.as_bytes().to_vec());
        assert_eq!(assertion.credential_id, registration.credential_id);

        let result = if round == 0 {
            #[allow(deprecated)]
            rp.finish_discoverable_authentication(
                &credential,
                state,
                &[DiscoverableKey::from(&passkey)],
            )
        } else {
            rp.finish_discoverable_authentication_v2(&credential, state, &passkey)
        }
        .expect("server verifies the assertion");
        assert!(result.user_verified());
        assert!(
            result.counter() > last_counter,
            "counter {} did not increase past {last_counter}",
            result.counter()
        );
        last_counter = result.counter();
        passkey.update_credential(&result);

        let prf = prf_bytes(&assertion.prf);
        assert_eq!(
            prf, at_creation,
            "PRF at login differs from PRF at creation"
        );
        assert_prf_absent(&assertion.response, &prf);
    }
    assert_eq!(keyring.credentials()[0].counter, last_counter);

    let id = &registration.credential_id;
    assert_eq!(local_prf(&mut keyring, id, &SALT).await, at_creation);
    let other = local_prf(&mut keyring, id, &OTHER_SALT).await;
    assert_ne!(other, at_creation);

    // The local evaluation advanced the counter too; the server still accepts the next login.
    let (assertion, credential, state) =
        log_in(&rp, &mut keyring, LOCAL_ORIGIN, &OTHER_SALT, None).await;
    assert_eq!(prf_bytes(&assertion.prf), other);
    let result = rp
        .finish_discoverable_authentication_v2(&credential, state, &passkey)
        .expect("server verifies");
    assert!(result.counter() > last_counter + 1);
}

#[tokio::test]
async fn another_credential_has_another_prf_and_can_be_chosen() {
    let (rp, mut keyring, (alice, first, alice_key)) = with_alice(&SALT).await;
    let (bob, second, bob_key) =
        register(&rp, &mut keyring, LOCAL_ORIGIN, "bob", &SALT, NOW + 60).await;
    assert_ne!(first.credential_id, second.credential_id);
    assert_ne!(prf_bytes(&first.prf), prf_bytes(&second.prf));

    // Default: the most recently created credential (bob).
    let (assertion, credential, state) = log_in(&rp, &mut keyring, LOCAL_ORIGIN, &SALT, None).await;
    assert_identifies(&rp, &credential, bob, &second.credential_id);
    assert_eq!(prf_bytes(&assertion.prf), prf_bytes(&second.prf));
    rp.finish_discoverable_authentication_v2(&credential, state, &bob_key)
        .expect("bob verifies");

    // Chosen: the older credential (alice).
    let as_alice = Some(first.credential_id.as_slice());
    let (assertion, credential, state) =
        log_in(&rp, &mut keyring, LOCAL_ORIGIN, &SALT, as_alice).await;
    assert_identifies(&rp, &credential, alice, &first.credential_id);
    assert_eq!(prf_bytes(&assertion.prf), prf_bytes(&first.prf));
    rp.finish_discoverable_authentication_v2(&credential, state, &alice_key)
        .expect("alice verifies");
    // The server does not accept Alice's assertion as Bob's credential.
    let (_, credential, state) = log_in(&rp, &mut keyring, LOCAL_ORIGIN, &SALT, as_alice).await;
    assert!(matches!(
        rp.finish_discoverable_authentication_v2(&credential, state, &bob_key),
        Err(WebauthnError::CredentialNotFound)
    ));

    // A second keyring with its own credential for the same rp has a different PRF.
    let mut other_keyring = Keyring::new();
    let (_, elsewhere, _) =
        register(&rp, &mut other_keyring, LOCAL_ORIGIN, "alice", &SALT, NOW).await;
    assert_ne!(prf_bytes(&elsewhere.prf), prf_bytes(&first.prf));
    assert_ne!(prf_bytes(&elsewhere.prf), prf_bytes(&second.prf));

    // Unknown credential and unknown rp are refused precisely.
    let (options, _) = start_login(&rp);
    match keyring
        .authenticate(LOCAL_ORIGIN, options, &SALT, Some(&elsewhere.credential_id))
        .await
    {
        Err(Error::UnknownCredential { rp_id, .. }) => assert_eq!(rp_id, "localhost"),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("a credential of another keyring was used"),
    }
    assert!(matches!(
        keyring
            .prf("example.com", &first.credential_id, &SALT)
            .await,
        Err(Error::UnknownCredential { .. })
    ));
    let other_rp = relying_party("sotto.example", "https://sotto.example");
    let (options, _) = start_login(&other_rp);
    assert!(matches!(
        keyring
            .authenticate("https://sotto.example", options, &SALT, None)
            .await,
        Err(Error::NoCredential { rp_id }) if rp_id == "sotto.example"
    ));
}

#[tokio::test]
async fn webauthn_rs_refuses_responses_for_another_origin_or_tampered() {
    let (rp, mut keyring, (_, _, passkey)) = with_alice(&SALT).await;

    // Registration ceremony run from another origin of the same rp id (another port).
    let (options, state) =
        start_registration(&rp, webauthn_rs::prelude::Uuid::new_v4(), "eve", None);
    let registration = keyring
        .register("http://localhost:9999", options, &SALT, "eve", NOW)
        .await
        .map_err(|e| e.to_string())
        .expect("the client itself accepts another localhost port");
    assert!(matches!(
        finish_registration(&rp, &registration, &state),
        Err(WebauthnError::InvalidRPOrigin)
    ));

    // Assertion from another origin (the client itself accepts another localhost port).
    let own = Some(passkey.cred_id().as_slice());
    let (_, credential, state) =
        log_in(&rp, &mut keyring, "http://localhost:9999", &SALT, own).await;
    assert!(matches!(
        rp.finish_discoverable_authentication_v2(&credential, state, &passkey),
        Err(WebauthnError::InvalidRPOrigin)
    ));

    // A genuine assertion with one signature byte flipped.
    let (assertion, _, state) = log_in(&rp, &mut keyring, LOCAL_ORIGIN, &SALT, own).await;
    let mut tampered = assertion.response.clone();
    let signature = tampered["response"]["signature"]
        .as_str()
        .expect("signature is a string")
        .to_owned();
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).expect("base64url");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    tampered["response"]["signature"] = URL_SAFE_NO_PAD.encode(bytes).into();
    assert!(matches!(
        rp.finish_discoverable_authentication_v2(&parse_assertion(&tampered), state, &passkey),
        Err(WebauthnError::AuthenticationFailure)
    ));

    // A relying party on another domain cannot be served from this origin.
    let (options, _) = start_registration(
        &relying_party("sotto.example", "https://sotto.example"),
        webauthn_rs::prelude::Uuid::new_v4(),
        "mallory",
        None,
    );
    assert!(matches!(
        keyring
            .register(LOCAL_ORIGIN, options, &SALT, "x", NOW)
            .await,
        Err(Error::OriginNotAllowed { .. })
    ));
}

#[tokio::test]
async fn https_origin_works_and_ip_literal_is_refused() {
    let rp = relying_party("sotto.example", "https://sotto.example");
    let mut keyring = Keyring::new();
    let (user, registration, passkey) = register(
        &rp,
        &mut keyring,
        "https://sotto.example",
        "alice",
        &SALT,
        NOW,
    )
    .await;
    let (assertion, credential, state) =
        log_in(&rp, &mut keyring, "https://sotto.example", &SALT, None).await;
    assert_identifies(&rp, &credential, user, &registration.credential_id);
    rp.finish_discoverable_authentication_v2(&credential, state, &passkey)
        .expect("verifies");
    assert_eq!(prf_bytes(&assertion.prf), prf_bytes(&registration.prf));

    // Plain http is refused for a real domain.
    let (options, _) = start_login(&rp);
    assert!(matches!(
        keyring
            .authenticate("http://sotto.example", options, &SALT, None)
            .await,
        Err(Error::OriginNotAllowed { .. })
    ));

    // IP-literal loopback cannot be an rp id (webauthn-rs itself refuses to be built with
    // one), so the options are the localhost ones with the rp id rewritten.
    assert!(webauthn_rs::WebauthnBuilder::new(
        "127.0.0.1",
        &webauthn_rs::prelude::Url::parse("http://127.0.0.1:8080").expect("url")
    )
    .is_err());
    let (mut options, _) =
        start_registration(&local_rp(), webauthn_rs::prelude::Uuid::new_v4(), "a", None);
    options["publicKey"]["rp"]["id"] = "127.0.0.1".into();
    match keyring
        .register("http://127.0.0.1:8080", options, &SALT, "a", NOW)
        .await
    {
        Err(Error::OriginNotAllowed { reason, .. }) => assert!(reason.contains("localhost")),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("an IP-literal origin was accepted"),
    }
}

#[tokio::test]
async fn excluded_credential_is_not_registered_twice() {
    let (rp, mut keyring, (user, registration, _)) = with_alice(&SALT).await;
    let (options, _) = start_registration(
        &rp,
        user,
        "alice",
        Some(vec![registration.credential_id.clone()]),
    );
    assert!(matches!(
        keyring.register(LOCAL_ORIGIN, options, &SALT, "again", NOW).await,
        Err(Error::CredentialExcluded { rp_id }) if rp_id == "localhost"
    ));
    assert_eq!(keyring.credentials().len(), 1);
}

#[tokio::test]
async fn malformed_options_are_refused_precisely() {
    let mut keyring = Keyring::new();
    for options in [
        serde_json::json!(null),
        serde_json::json!({"publicKey": 3}),
        serde_json::json!({"publicKey": {"extensions": []}}),
        serde_json::json!({"publicKey": {"challenge": "not base64!"}}),
    ] {
        assert!(matches!(
            keyring
                .register(LOCAL_ORIGIN, options.clone(), &SALT, "x", NOW)
                .await,
            Err(Error::InvalidOptions { .. })
        ));
        assert!(matches!(
            keyring
                .authenticate(LOCAL_ORIGIN, options, &SALT, None)
                .await,
            Err(Error::InvalidOptions { .. }) | Err(Error::NoCredential { .. })
        ));
    }
    let (options, _) = start_login(&local_rp());
    assert!(matches!(
        keyring
            .authenticate("not a url", options, &SALT, None)
            .await,
        Err(Error::InvalidOrigin { .. })
    ));
}

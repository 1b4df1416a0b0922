//! A relying party for the tests: webauthn-rs 0.6.2 configured as Sotto's server is
//! (passkeys, discoverable login, resident key required in the creation options).

use serde_json::Value;
use sotto_authenticator::{Assertion, Keyring, Registration};
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};

pub const LOCAL_ORIGIN: &str = "http://localhost:8080";
pub const NOW: u64 = 1_760_000_000;

pub fn relying_party(rp_id: &str, origin: &str) -> Webauthn {
    let origin = Url::parse(origin).expect("test origin parses");
    WebauthnBuilder::new(rp_id, &origin)
        .expect("webauthn builder accepts rp id and origin")
        .rp_name("Sotto")
        .build()
        .expect("webauthn builds")
}

pub fn local_rp() -> Webauthn {
    relying_party("localhost", LOCAL_ORIGIN)
}

/// Start a passkey registration and edit the options as Sotto's server does.
pub fn start_registration(
    rp: &Webauthn,
    user: Uuid,
    name: &str,
    exclude: Option<Vec<Vec<u8>>>,
) -> (Value, PasskeyRegistration) {
    let (ccr, state) = rp
        .start_passkey_registration(user, name, name, exclude)
        .expect("start registration");
    let mut options = serde_json::to_value(&ccr).expect("creation options serialize");
    let selection = options
        .get_mut("publicKey")
        .and_then(|pk| pk.get_mut("authenticatorSelection"))
        .and_then(Value::as_object_mut)
        .expect("webauthn-rs sends authenticatorSelection");
    selection.insert("residentKey".into(), "required".into());
    selection.insert("requireResidentKey".into(), true.into());
    (options, state)
}

pub fn finish_registration(
    rp: &Webauthn,
    registration: &Registration,
    state: &PasskeyRegistration,
) -> Result<Passkey, webauthn_rs::prelude::WebauthnError> {
    let credential: RegisterPublicKeyCredential =
        serde_json::from_value(registration.response.clone())
            .expect("registration response deserializes as RegisterPublicKeyCredential");
    rp.finish_passkey_registration(&credential, state)
}

/// Register a new credential in `keyring` for a fresh user and complete it on the server.
pub async fn register(
    rp: &Webauthn,
    keyring: &mut Keyring,
    origin: &str,
    name: &str,
    salt: &[u8; 32],
    created_at: u64,
) -> (Uuid, Registration, Passkey) {
    let user = Uuid::new_v4();
    let (options, state) = start_registration(rp, user, name, None);
    let registration = keyring
        .register(origin, options, salt, name, created_at)
        .await
        .unwrap_or_else(|e| panic!("register failed: {e}"));
    let passkey =
        finish_registration(rp, &registration, &state).expect("server accepts registration");
    (user, registration, passkey)
}

/// The local relying party, and a keyring in which alice registered with `salt` (her user,
/// registration and server-side passkey).
pub async fn with_alice(salt: &[u8; 32]) -> (Webauthn, Keyring, (Uuid, Registration, Passkey)) {
    let rp = local_rp();
    let mut keyring = Keyring::new();
    let alice = register(&rp, &mut keyring, LOCAL_ORIGIN, "alice", salt, NOW).await;
    (rp, keyring, alice)
}

pub fn start_login(rp: &Webauthn) -> (Value, DiscoverableAuthentication) {
    let (rcr, state) = rp
        .start_discoverable_authentication()
        .expect("start discoverable authentication");
    (
        serde_json::to_value(&rcr).expect("request options serialize"),
        state,
    )
}

/// A discoverable login: `keyring` answers `rp`'s request from `origin` with `salt` (and with
/// `credential`, when one is chosen). Returns the assertion, the credential as the server reads
/// it, and the server's state for finishing the ceremony.
pub async fn log_in(
    rp: &Webauthn,
    keyring: &mut Keyring,
    origin: &str,
    salt: &[u8; 32],
    credential: Option<&[u8]>,
) -> (Assertion, PublicKeyCredential, DiscoverableAuthentication) {
    let (options, state) = start_login(rp);
    let assertion = keyring
        .authenticate(origin, options, salt, credential)
        .await
        .unwrap_or_else(|e| panic!("login failed: {e}"));
    let credential = parse_assertion(&assertion.response);
    (assertion, credential, state)
}

/// The PRF of `keyring`'s credential `id` for localhost at `salt`, evaluated locally.
pub async fn local_prf(keyring: &mut Keyring, id: &[u8], salt: &[u8; 32]) -> [u8; 32] {
    let prf = keyring
        .prf("localhost", id, salt)
        .await
        .unwrap_or_else(|e| panic!("local PRF failed: {e}"));
    *prf.as_bytes()
}

pub fn parse_assertion(response: &Value) -> PublicKeyCredential {
    serde_json::from_value(response.clone())
        .expect("assertion response deserializes as PublicKeyCredential")
}

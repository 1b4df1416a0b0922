//! Against an implementation this project did not write: Cloudflare's privacypass-ts, run by
//! node (`interop/interop.mjs`). Its issuer signs this crate's token requests and its origin
//! accepts the tokens this crate finalizes; this crate's issuer signs its client's requests and
//! this crate's redeemer accepts the tokens it finalizes.
//!
//! Needs node and `npm ci --prefix crates/tokens/interop` (scripts/test-deps runs it); without
//! them the test says so and passes without checking anything else.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use blind_rsa_signatures::SecretKeySha384PSSDeterministic;
use serde_json::{json, Value};
use sotto_tokens::{IssuerSecret, PendingToken, Token, TokenChallenge};

struct Node {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Node {
    fn start(dir: &Path) -> Option<Node> {
        if !dir.join("node_modules/@cloudflare/privacypass-ts").is_dir() {
            eprintln!(
                "SKIPPED: privacypass-ts is not installed; run `npm ci --prefix {}` to test \
                 against it",
                dir.display()
            );
            return None;
        }
        let mut child = match Command::new("node")
            .arg(dir.join("interop.mjs"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => {
                eprintln!("SKIPPED: node does not run ({e}); install Node.js to test interop");
                return None;
            }
        };
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Some(Node {
            child,
            stdin,
            stdout,
        })
    }

    fn ask(&mut self, cmd: Value) -> Value {
        writeln!(self.stdin, "{cmd}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let answer: Value = serde_json::from_str(&line).expect("privacypass-ts answers JSON");
        assert!(answer.get("error").is_none(), "privacypass-ts: {answer}");
        answer
    }

    fn hex(&mut self, cmd: Value, field: &str) -> Vec<u8> {
        let answer = self.ask(cmd);
        hex::decode(answer[field].as_str().unwrap()).unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn tokens_interoperate_with_privacypass_ts() {
    let Some(mut node) = Node::start(&Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")) else {
        return;
    };
    let issuer = IssuerSecret::generate().unwrap();
    let pkcs8 = issuer.to_pkcs8_der().unwrap();
    let rsa_encryption = SecretKeySha384PSSDeterministic::from_der(&pkcs8)
        .unwrap()
        .public_key()
        .unwrap()
        .to_der()
        .unwrap();
    node.ask(json!({
        "op": "keys",
        "sk": hex::encode(&*pkcs8),
        "pk": hex::encode(issuer.public().spki()),
        "pk_enc": hex::encode(rsa_encryption),
    }));
    let challenge = TokenChallenge {
        issuer_name: "issuer.test".into(),
        redemption_context: vec![9; 32],
        origin_info: vec!["relay.test".into()],
    };
    let digest = challenge.digest().unwrap();

    for _ in 0..3 {
        // This crate's client, privacypass-ts's issuer and origin.
        let (pending, request) = PendingToken::start_random(&challenge, issuer.public()).unwrap();
        let response = node.hex(
            json!({"op": "issue", "request": hex::encode(&request)}),
            "response",
        );
        let token = pending.finish(&response).unwrap();
        let answer = node.ask(json!({"op": "verify", "token": hex::encode(&*token.encode())}));
        assert_eq!(answer["valid"], true, "privacypass-ts accepts our token");
        issuer.public().verify(&token, &digest).unwrap();

        // privacypass-ts's client, this crate's issuer and redeemer.
        let request = node.hex(
            json!({"op": "request", "challenge": hex::encode(challenge.encode().unwrap())}),
            "request",
        );
        let response = issuer.sign(&request).unwrap();
        let token = node.hex(
            json!({"op": "finalize", "response": hex::encode(&response)}),
            "token",
        );
        let token = Token::decode(&token).unwrap();
        issuer.public().verify(&token, &digest).unwrap();

        // A token privacypass-ts's origin must refuse: one bit of the signature flipped.
        let mut forged = token.encode().to_vec();
        forged[300] ^= 1;
        let answer = node.ask(json!({"op": "verify", "token": hex::encode(&forged)}));
        assert_eq!(
            answer["valid"], false,
            "privacypass-ts refuses a forged token"
        );
    }
}

//! The browser's release checks, natively: the two-step channel (evidence, then a logged
//! release) against a real simulated enclave, the log check the web app drives file by file,
//! and which trust configuration a build accepts. Each refusal with what causes it.

mod common;

use common::{check, dev_log_listing, release, Deployment, Enclave, Files, Keys};
use serde_json::Value;
use sotto_channel::ChannelError;
use sotto_release::{AdmitError, LogError, Trust};
use sotto_web::channel::ChannelCore;
use sotto_web::release::{select_trust, CompiledTrust, LogCheckCore};
use sotto_web::WebError;

const PROMPT: &str = r#"[{"role":"user","content":"secret"}]"#;

fn attested(enclave: &Enclave) -> ChannelCore {
    let mut client = ChannelCore::new(&enclave.policy()).unwrap();
    let (reply, _) = enclave.respond(client.hello());
    client.finish(&reply, common::now()).unwrap();
    client
}

/// What the log check of `files` (trusting `trust`, after `state`) refused.
fn log_refusal(trust: Trust, state: &str, files: &Files) -> LogError {
    match check(trust, state, files) {
        Err(WebError::Log(e)) => e,
        Err(e) => panic!("refused, but not by the log: {e}"),
        Ok(_) => panic!("the log check passed"),
    }
}

#[test]
fn nothing_is_sealed_before_a_logged_release_admits_the_enclave() {
    let enclave = Enclave::boot();
    let mut client = ChannelCore::new(&enclave.policy()).unwrap();
    let log = dev_log_listing(&enclave.measurement());
    // admit() before finish(): the evidence comes first.
    assert!(matches!(client.admit(&log), Err(WebError::State(_))));
    let (reply, mut server) = enclave.respond(client.hello());
    let summary: Value = serde_json::from_str(&client.finish(&reply, common::now()).unwrap())
        .expect("the attested summary");
    assert_eq!(summary["platform"], "simulated");
    assert!(summary.get("admitted").is_none() && summary.get("log").is_none());
    // Attested, not admitted: nothing can be sealed or opened, and finish() does not repeat.
    let err = client.seal_chat(PROMPT, "").unwrap_err();
    assert!(matches!(err, WebError::State(_)), "{err}");
    assert!(err.to_string().contains("admit()"), "{err}");
    assert!(matches!(client.open(&[0u8; 40]), Err(WebError::State(_))));
    assert!(matches!(
        client.finish(&reply, common::now()),
        Err(WebError::State(_))
    ));
    // Admitted: the session works, and admission does not repeat.
    let summary: Value = serde_json::from_str(&client.admit(&log).unwrap()).unwrap();
    assert_eq!(summary["admitted"]["version"], "web-test");
    assert_eq!(summary["log"]["size"], 1);
    let frames = client.seal_chat(PROMPT, "").unwrap();
    assert!(server.open(&frames[0]).unwrap().is_some());
    assert!(matches!(client.admit(&log), Err(WebError::State(_))));
}

#[test]
fn evidence_verified_but_no_release_lists_the_measurement() {
    let enclave = Enclave::boot();
    let mut client = attested(&enclave);
    let other = "ab".repeat(48);
    let err = client.admit(&dev_log_listing(&other)).unwrap_err();
    assert!(
        matches!(
            err,
            WebError::Channel(ChannelError::Release(AdmitError::NotListed {
                platform: "simulated",
                ..
            }))
        ),
        "{err}"
    );
    assert!(
        err.to_string().starts_with(
            "release refused: no release in the log lists this enclave's simulated measurement"
        ),
        "{err}"
    );
    // The channel is closed for good: a later, matching log does not reopen it.
    assert!(matches!(
        client.seal_chat(PROMPT, ""),
        Err(WebError::Closed(_))
    ));
    assert!(matches!(
        client.admit(&dev_log_listing(&enclave.measurement())),
        Err(WebError::Closed(_))
    ));
}

#[test]
fn releases_below_quorum_or_in_a_production_log_admit_no_simulated_enclave() {
    let enclave = Enclave::boot();
    let m = enclave.measurement();
    // Signed by one of the two release keys required.
    let keys = Keys::dev(2);
    let files = keys.serve(&[keys.signed(&release(&m), 1)], 2, 60);
    let (log, _) = check(keys.trust(true), "", &files).unwrap();
    let err = attested(&enclave).admit(&log).unwrap_err();
    assert!(
        matches!(
            err,
            WebError::Channel(ChannelError::Release(AdmitError::BelowQuorum {
                have: 1,
                need: 2,
                ..
            }))
        ),
        "{err}"
    );
    // A production log listing the simulated measurement still admits no simulated enclave.
    let keys = Keys::new("log.sotto.example", 3);
    let files = keys.serve(&[keys.signed(&release(&m), 2)], 2, 60);
    let (log, _) = check(keys.trust(false), "", &files).unwrap();
    let err = attested(&enclave).admit(&log).unwrap_err();
    assert!(
        matches!(
            err,
            WebError::Channel(ChannelError::Release(AdmitError::SimulatedInProduction))
        ),
        "{err}"
    );
}

#[test]
fn admit_needs_a_finished_log_check() {
    let enclave = Enclave::boot();
    let keys = Keys::dev(4);
    let mut client = attested(&enclave);
    let unfinished = LogCheckCore::new(keys.trust(true), "", common::now().0).unwrap();
    let err = client.admit(&unfinished).unwrap_err();
    assert!(err.to_string().contains("LogCheck.finish()"), "{err}");
    assert!(matches!(
        client.seal_chat(PROMPT, ""),
        Err(WebError::Closed(_))
    ));
}

#[test]
fn the_log_check_remembers_the_tree_and_refuses_split_views_and_rollbacks() {
    let keys = Keys::dev(5);
    let trust = || keys.trust(true);
    let e0 = keys.signed(&release(&"01".repeat(48)), 2);
    let e1 = keys.signed(&release(&"02".repeat(48)), 2);
    let one = keys.serve(std::slice::from_ref(&e0), 2, 60);
    let two = keys.serve(&[e0.clone(), e1.clone()], 2, 60);

    // The first check asks for the checkpoint, then the entries.
    let c = LogCheckCore::new(trust(), "", common::now().0).unwrap();
    assert_eq!(c.wanted_json().unwrap(), r#"["checkpoint"]"#);
    assert_eq!(c.origin(), "dev.sotto.invalid/web-test-5");
    let (_, first) = check(trust(), "", &one).unwrap();
    assert_eq!(first["origin"], "dev.sotto.invalid/web-test-5");
    assert_eq!(first["size"], 1);
    assert_eq!(first["log"]["previous_size"], Value::Null);
    assert_eq!(first["log"]["statements"], 1);
    let state1 = first["state"].as_str().unwrap().to_owned();

    // The same tree again, then a grown one: consistent with what was seen.
    let (_, again) = check(trust(), &state1, &one).unwrap();
    assert_eq!(again["log"]["previous_size"], 1);
    let (_, grown) = check(trust(), &state1, &two).unwrap();
    assert_eq!(grown["size"], 2);
    assert_eq!(grown["log"]["previous_size"], 1);
    let state2 = grown["state"].as_str().unwrap().to_owned();

    // The same size with another root: a split view.
    let other = keys.serve(std::slice::from_ref(&e1), 2, 60);
    let err = log_refusal(trust(), &state1, &other);
    assert!(matches!(err, LogError::SplitView { size: 1 }), "{err}");
    let shown = WebError::from(err).to_string();
    assert!(
        shown.starts_with("the release log cannot be trusted: split view"),
        "{shown}"
    );
    // A smaller tree than seen before: rolled back.
    let err = log_refusal(trust(), &state2, &one);
    assert!(
        matches!(err, LogError::RolledBack { seen: 2, now: 1 }),
        "{err}"
    );
    assert!(err.to_string().contains("rolled back"), "{err}");
    // A grown tree that rewrote the first entry does not extend the one seen.
    let rewritten = keys.serve(&[e1.clone(), e0.clone()], 2, 60);
    let err = log_refusal(trust(), &state1, &rewritten);
    assert!(
        matches!(err, LogError::Inconsistent { seen: 1, now: 2 }),
        "{err}"
    );

    // A stored state must be for this log and self-consistent.
    let err = LogCheckCore::new(Keys::dev(6).trust(true), &state1, 0)
        .err()
        .unwrap();
    assert!(matches!(err, WebError::Log(LogError::State(_))), "{err}");
    let forged = state1.replace(r#""size":1"#, r#""size":2"#);
    let err = LogCheckCore::new(trust(), &forged, 0).err().unwrap();
    assert!(matches!(err, WebError::Log(LogError::State(_))), "{err}");
}

#[test]
fn the_log_check_refuses_another_log_and_missing_or_stale_witnesses() {
    let keys = Keys::dev(7);
    let entry = [keys.signed(&release(&"01".repeat(48)), 2)];
    // A server whose log has other keys: refused, naming both logs.
    let err = log_refusal(keys.trust(true), "", &Keys::dev(8).serve(&entry, 2, 60));
    assert!(matches!(err, LogError::OtherLog { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("dev.sotto.invalid/web-test-8")
            && text.contains("dev.sotto.invalid/web-test-7"),
        "{text}"
    );
    // One of the two witnesses, and both but two hours ago.
    let err = log_refusal(keys.trust(true), "", &keys.serve(&entry, 1, 60));
    assert!(
        matches!(err, LogError::TooFewCosignatures { have: 1, need: 2 }),
        "{err}"
    );
    let err = log_refusal(keys.trust(true), "", &keys.serve(&entry, 2, 7200));
    assert!(matches!(err, LogError::StaleCosignatures { .. }), "{err}");
}

#[test]
fn the_log_check_is_driven_strictly() {
    let keys = Keys::dev(9);
    let files = keys.serve(&[keys.signed(&release(&"01".repeat(48)), 2)], 2, 60);
    // finish() before the files arrived.
    let mut c = LogCheckCore::new(keys.trust(true), "", common::now().0).unwrap();
    let err = c.finish().unwrap_err();
    assert!(
        matches!(err, WebError::Log(LogError::Incomplete(_))),
        "{err}"
    );
    // A path that was not asked for ends the check.
    let mut c = LogCheckCore::new(keys.trust(true), "", common::now().0).unwrap();
    c.give("checkpoint", &files["checkpoint"]).unwrap();
    assert_eq!(c.wanted_json().unwrap(), r#"["tile/entries/000.p/1"]"#);
    let err = c.give("tile/entries/001.p/1", b"").unwrap_err();
    assert!(
        matches!(err, WebError::Log(LogError::Unexpected(_))),
        "{err}"
    );
    assert_eq!(c.wanted_json().unwrap(), "[]");
    assert!(matches!(
        c.give("tile/entries/000.p/1", &files["tile/entries/000.p/1"]),
        Err(WebError::CheckFailed(_))
    ));
    assert!(matches!(c.finish(), Err(WebError::CheckFailed(_))));
    assert!(matches!(c.checked(), Err(WebError::CheckFailed(_))));
    // A finished check does not take more files or finish twice.
    let (mut done, _) = check(keys.trust(true), "", &files).unwrap();
    assert!(matches!(done.finish(), Err(WebError::State(_))));
    assert!(matches!(
        done.give("checkpoint", &files["checkpoint"]),
        Err(WebError::State(_))
    ));
}

/// Whose trust configuration `err` says is malformed, if that is what it says.
fn malformed_trust(err: &WebError) -> Option<&'static str> {
    match err {
        WebError::BadTrust { whose, .. } => Some(whose),
        _ => None,
    }
}

#[test]
fn which_trust_configuration_a_build_accepts() {
    let dev = Keys::dev(10);
    let prod = Keys::new("log.sotto.example", 11);
    let (dev_json, prod_json) = (dev.trust_json(true), prod.trust_json(false));

    // Pins compiled in win; the server's configuration is not even read.
    for allow in [false, true] {
        let t = select_trust(Some(&prod_json), allow, "not json").unwrap();
        assert_eq!(t.origin(), "log.sotto.example");
        let t = select_trust(Some(&prod_json), allow, &dev_json).unwrap();
        assert_eq!(t.origin(), "log.sotto.example");
    }
    // A pinned development configuration (another stack's trust.json) is pinned too.
    let t = select_trust(Some(&dev_json), true, &Keys::dev(12).trust_json(true)).unwrap();
    assert_eq!(t.origin(), "dev.sotto.invalid/web-test-10");
    let err = select_trust(Some("{}"), true, &dev_json).unwrap_err();
    assert_eq!(malformed_trust(&err), Some("compiled-in"), "{err}");

    // A development build takes the server's configuration only when it is a dev one.
    let t = select_trust(None, true, &dev_json).unwrap();
    assert!(t.is_dev());
    assert_eq!(t.origin(), "dev.sotto.invalid/web-test-10");
    let err = select_trust(None, true, &prod_json).unwrap_err();
    assert!(matches!(err, WebError::ServerTrustNotDev { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("log.sotto.example, which is not a development one"),
        "{err}"
    );
    let err = select_trust(None, true, "").unwrap_err();
    assert!(matches!(err, WebError::NoServerTrust), "{err}");
    let err = select_trust(None, true, "{\"format\":\"sotto-trust/v1\"}").unwrap_err();
    assert_eq!(malformed_trust(&err), Some("server's"), "{err}");
    // A dev-marked configuration naming a non-development log is no dev configuration.
    let mut sneaky = prod.trust_file(false);
    sneaky.dev = true;
    let err = select_trust(None, true, &serde_json::to_string(&sneaky).unwrap()).unwrap_err();
    assert_eq!(malformed_trust(&err), Some("server's"), "{err}");

    // Any other build has the production pins, of which there are none yet.
    for server in ["", dev_json.as_str(), prod_json.as_str()] {
        let err = select_trust(None, false, server).unwrap_err();
        assert!(matches!(err, WebError::NoProductionPins), "{err}");
        let build = CompiledTrust {
            pinned: None,
            allow_simulated: false,
        };
        assert!(matches!(
            build.select(server),
            Err(WebError::NoProductionPins)
        ));
    }
    assert!(WebError::NoProductionPins
        .to_string()
        .contains("pins no production release log"));
}

#[test]
fn a_build_without_the_simulated_platform_refuses_a_policy_asking_for_it() {
    let enclave = Enclave::boot();
    let err = ChannelCore::new_in_build(&enclave.policy(), false)
        .err()
        .unwrap();
    assert!(matches!(err, WebError::SimulatedNotBuilt), "{err}");
    ChannelCore::new_in_build("{}", false).unwrap();
    ChannelCore::new_in_build(&enclave.policy(), true).unwrap();
}

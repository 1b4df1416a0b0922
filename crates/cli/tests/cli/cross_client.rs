//! The CLI and the browser client share one history: a conversation the CLI writes is opened
//! whole by the browser (its flows stepped exactly as the page steps them), and one the browser
//! writes is opened whole by the CLI, through the real server, with the same passkey on both
//! (a synced passkey provider: the browser holds the CLI's passkey file).

use serde_json::{json, Value};
use sotto::account;
use sotto::history;
use sotto::local::Profile;
use sotto_authenticator::Keyring;
use sotto_vault::Role;
use sotto_web::testing::{Browser, Server};

#[test]
fn the_cli_and_the_browser_open_each_others_conversations() {
    let mut server = Server::start();
    let url = server.test.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let profile = Profile {
        dir: dir.path().join("sotto"),
    };
    let cli_words = [
        (Role::System, "Answer in one line."),
        (Role::User, "Which river runs through Lyon?"),
        (Role::Assistant, "The Rhône, and the Saône."),
    ];
    let by_cli = server.rt.block_on(async {
        let (mut u, _) = account::create(&profile, &url, "Ada", "cli").await.unwrap();
        let conv = history::start(&mut u, "Rivers").await.unwrap();
        for (role, text) in cli_words {
            history::append(&mut u, &conv, role, text).await.unwrap();
        }
        u.save_ledger(&profile).unwrap();
        conv
    });

    let mut browser = Browser::with(Keyring::load(&profile.keyring_path(), None).unwrap());
    let web = browser.sign_in(&mut server);
    // Synced back, as a passkey provider syncs its signature counter.
    browser
        .keyring()
        .save(&profile.keyring_path(), None)
        .unwrap();
    let opened: Value =
        serde_json::from_str(&web.conversation_json(&by_cli).unwrap().unwrap()).unwrap();
    assert_eq!(opened["title"], "Rivers");
    let seen: Vec<(String, String)> = opened["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let m = &t["message"];
            (
                m["role"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = cli_words
        .iter()
        .map(|(role, text)| {
            let role = serde_json::to_value(role).unwrap();
            (role.as_str().unwrap().to_owned(), text.to_string())
        })
        .collect();
    assert_eq!(seen, expected);

    let turn = json!([
        {"role": "user", "content": "And through Paris?", "created_at": 1_000},
        {"role": "assistant", "content": "The Seine.", "created_at": 1_001},
    ]);
    let done = browser
        .run(&mut server, web.save_turn(None, &turn.to_string()).unwrap())
        .unwrap();
    let saved: Value = serde_json::from_str(&done.saved_json().unwrap()).unwrap();
    let by_web = saved["conv"].as_str().unwrap().to_owned();

    let (title, said) = server.rt.block_on(async {
        let mut u = account::unlock(&profile).await.unwrap();
        let h = history::sync(&mut u).await.unwrap();
        assert_eq!(h.get(&by_cli).unwrap().messages().count(), cli_words.len());
        let c = h.get(&by_web).expect("the browser's conversation");
        let said: Vec<(Role, String)> = c
            .messages()
            .map(|(_, m)| (m.role, m.content.to_string()))
            .collect();
        (c.title().to_owned(), said)
    });
    assert_eq!(title, "And through Paris?");
    assert_eq!(
        said,
        [
            (Role::User, "And through Paris?".to_owned()),
            (Role::Assistant, "The Seine.".to_owned())
        ]
    );
}

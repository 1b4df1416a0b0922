//! `sotto chat`: verify the enclave (hardware evidence, then the release log), then talk to the
//! model over the encrypted channel, once or interactively, saving each turn to the encrypted
//! history when signed in. The model's words are shown with control characters escaped: what
//! it writes cannot drive the terminal. An answer cut short (the enclave stopped at a length
//! limit, or the stream broke mid-answer) is saved as far as it got, marked incomplete.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use sotto_channel::messages::{GenParams, Role, Stats, WireMessage};
use sotto_vault::Incomplete;
use zeroize::Zeroizing;

use super::enclave_args::{EnclaveArgs, Route};
use super::{AnyError, ProfileArgs};
use crate::client::{now, ClientError, Connection};
use crate::local::Profile;
use crate::term::shown;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    route: Route,
    /// Do not save this conversation, even when signed in.
    #[arg(long)]
    no_save: bool,
    /// Continue a saved conversation (id or unique prefix).
    #[arg(long, conflicts_with = "no_save")]
    conversation: Option<String>,
    #[command(flatten)]
    profile: ProfileArgs,
    #[command(flatten)]
    enclave: EnclaveArgs,
    /// Show what was verified: platform, measurement, release, log size, witnesses.
    #[arg(short, long)]
    verbose: bool,
    /// A system prompt.
    #[arg(long)]
    system: Option<String>,
    #[arg(long, default_value_t = 512)]
    max_tokens: u32,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    #[arg(long)]
    seed: Option<u64>,
    /// Ask once and exit; without it, chat interactively.
    prompt: Option<String>,
}

pub async fn run(args: Args) -> Result<ExitCode, AnyError> {
    let checks = args.enclave.checks()?;
    let mut saver = open_saver(&args).await?;
    let mut conversation: Option<String> = None;
    let mut loaded: Vec<WireMessage> = Vec::new();
    if let Some(prefix) = &args.conversation {
        let (_, u) = saver
            .as_mut()
            .ok_or("sign in (`sotto account login`) to continue a saved conversation")?;
        let h = crate::history::sync(u).await?;
        let c = h.find(prefix)?;
        conversation = Some(c.id.clone());
        for (_, m) in c.messages() {
            loaded.push(WireMessage {
                role: m.role,
                content: Zeroizing::new(m.content.clone()),
            });
        }
    }
    let profile = args.profile.profile();
    // A relay that requires tokens gets one, and nothing else about the user.
    let paid = crate::relay_tokens::for_connection(&args.route.server, &profile)
        .await
        .map_err(|e| e as AnyError)?;
    let token = paid
        .as_ref()
        .map(|(authorization, _)| authorization.as_str());
    let (mut conn, checked) = checks.open(&args.route, token, &profile).await?;
    if args.verbose {
        print_verified(conn.verified(), &checked);
    }
    let params = GenParams {
        max_tokens: args.max_tokens,
        temperature: args.temperature,
        top_p: args.top_p,
        seed: args.seed,
    };
    let mut history: Vec<WireMessage> = loaded;
    if let Some(system) = args.system.clone() {
        history.push(WireMessage {
            role: Role::System,
            content: Zeroizing::new(system),
        });
    }
    if let Some(prompt) = args.prompt {
        history.push(WireMessage {
            role: Role::User,
            content: Zeroizing::new(prompt),
        });
        let (result, answer) = stream(&mut conn, &history, params).await;
        conn.close().await;
        if let Some(cut) = ended(&result, &answer) {
            say_cut(cut, args.max_tokens);
            save_turn(&mut saver, &mut conversation, &history, &answer, cut).await;
        }
        if let Some((_, policy)) = &paid {
            crate::relay_tokens::refill(&args.route.server, &profile, policy).await;
        }
        result?;
        return Ok(ExitCode::SUCCESS);
    }
    let v = conn.verified();
    let banner = format!(
        "Verified enclave: platform {}, model {} ({}), release {} (log entry {}). Type /quit to \
         leave, /reset to start over.",
        v.manifest.platform,
        v.manifest.model.name,
        v.manifest.model.sha256,
        v.release.version,
        v.release.index
    );
    eprintln!("{}", shown(&banner));
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            eprint!("> ");
        }
        let Some(line) = lines.next() else { break };
        let line = Zeroizing::new(line?);
        match line.trim() {
            "" => continue,
            "/quit" | "/exit" => break,
            "/reset" => {
                history.retain(|m| m.role == Role::System);
                conversation = None;
                continue;
            }
            _ => {}
        }
        history.push(WireMessage {
            role: Role::User,
            content: Zeroizing::new(line.trim().to_string()),
        });
        let (result, answer) = stream(&mut conn, &history, params).await;
        // The session is still good: drop the turn that did not fit and let the user go on.
        if let Err(e @ ClientError::ContextExceeded(_)) = &result {
            if answer.is_empty() {
                history.pop();
                eprintln!("sotto: {e} (type /reset to start a new conversation)");
                continue;
            }
        }
        if let Some(cut) = ended(&result, &answer) {
            say_cut(cut, args.max_tokens);
            save_turn(&mut saver, &mut conversation, &history, &answer, cut).await;
            history.push(WireMessage {
                role: Role::Assistant,
                content: answer,
            });
        }
        result?;
    }
    conn.close().await;
    if let Some((_, policy)) = &paid {
        crate::relay_tokens::refill(&args.route.server, &profile, policy).await;
    }
    Ok(ExitCode::SUCCESS)
}

/// What `sotto chat -v` shows: what was verified before anything was sent. The names come
/// from the enclave's manifest and the log, so they are shown escaped too.
fn print_verified(v: &sotto_channel::Verified, log: &crate::transparency::Checked) {
    let measurement = hex::encode(v.verdict.launch_measurement());
    let r = &v.release;
    let mut lines = vec![
        "Verified before sending:".to_string(),
        format!("  platform:    {}", v.manifest.platform),
        format!("  measurement: {measurement}"),
        format!(
            "  model:       {} (sha256 {})",
            v.manifest.model.name, v.manifest.model.sha256
        ),
        format!(
            "  release:     {} {} (commit {}), log entry {}, signed by {}",
            r.name,
            r.version,
            r.source_commit,
            r.index,
            r.signers.join(", ")
        ),
    ];
    let cp = &log.view.checkpoint;
    lines.push(format!(
        "  log:         {}, size {}{}",
        cp.origin,
        cp.size,
        match log.view.previous_size {
            Some(n) => format!(" (consistent with the {n} seen before)"),
            None => " (first seen now)".to_string(),
        }
    ));
    let now = now().0;
    for w in &log.view.cosigners {
        lines.push(format!(
            "  witness:     {} cosigned {} s ago",
            w.name,
            now.saturating_sub(w.timestamp)
        ));
    }
    for line in lines {
        eprintln!("{}", shown(&line));
    }
}

/// How an answer ended, when there is one to keep: `Some(None)` for a whole answer,
/// `Some(Some(why))` for one cut short, `None` when nothing came.
/// Asks for the next answer and shows it as it streams, escaped; returns how the stream ended
/// and what arrived of the answer (all of it, or the part before a failure).
async fn stream(
    conn: &mut Connection,
    history: &[WireMessage],
    params: GenParams,
) -> (Result<Stats, ClientError>, Zeroizing<String>) {
    let mut stdout = std::io::stdout();
    let mut answer = Zeroizing::new(String::new());
    let result = conn
        .chat(history, params, &mut |piece| {
            answer.push_str(piece);
            let _ = stdout.write_all(shown(piece).as_bytes());
            let _ = stdout.flush();
        })
        .await;
    println!();
    (result, answer)
}

fn ended(result: &Result<Stats, ClientError>, answer: &str) -> Option<Option<Incomplete>> {
    match result {
        Ok(stats) if stats.stop.is_complete() => Some(None),
        Ok(_) => Some(Some(Incomplete::Length)),
        Err(_) if answer.is_empty() => None,
        Err(_) => Some(Some(Incomplete::Interrupted)),
    }
}

/// Tells the user an answer on screen is not the whole one.
fn say_cut(cut: Option<Incomplete>, max_tokens: u32) {
    match cut {
        None => {}
        Some(Incomplete::Length) => eprintln!(
            "sotto: the answer stopped at the length limit (--max-tokens {max_tokens}, or the \
             model's context); it is kept as incomplete"
        ),
        Some(Incomplete::Interrupted) => {
            eprintln!("sotto: the answer was cut off mid-stream; it is kept as incomplete")
        }
    }
}

type Saver = Option<(Profile, crate::account::Unlocked)>;

/// Unlocks the history when signed in (a conversation is then saved encrypted, turn by turn).
async fn open_saver(args: &Args) -> Result<Saver, AnyError> {
    if args.no_save {
        return Ok(None);
    }
    let profile = args.profile.profile();
    match crate::account::unlock(&profile).await {
        Ok(u) => Ok(Some((profile, u))),
        Err(crate::account::AccountError::NotSignedIn) => {
            eprintln!("(not signed in: this conversation is not saved; `sotto account create` keeps an encrypted history)");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Saves the last user message and the answer (`incomplete` when it was cut short). A failure
/// to save is reported, not fatal: the conversation on screen goes on.
async fn save_turn(
    saver: &mut Saver,
    conversation: &mut Option<String>,
    history: &[WireMessage],
    answer: &str,
    incomplete: Option<Incomplete>,
) {
    let Some((profile, u)) = saver.as_mut() else {
        return;
    };
    let result: Result<(), AnyError> = async {
        let conv = match conversation.clone() {
            Some(c) => c,
            None => {
                let title: String = history
                    .iter()
                    .find(|m| m.role == Role::User)
                    .map(|m| m.content.chars().take(60).collect())
                    .unwrap_or_default();
                let c = crate::history::start(u, &title).await?;
                for m in history.iter().filter(|m| m.role == Role::System) {
                    crate::history::append(u, &c, sotto_vault::Role::System, &m.content).await?;
                }
                *conversation = Some(c.clone());
                c
            }
        };
        if let Some(last) = history.last().filter(|m| m.role == Role::User) {
            crate::history::append(u, &conv, sotto_vault::Role::User, &last.content).await?;
        }
        let mut message = sotto_vault::Message::new(
            sotto_vault::Role::Assistant,
            answer,
            crate::account::now_ms(),
        );
        message.incomplete = incomplete;
        crate::history::append_message(u, &conv, message).await?;
        u.save_ledger(profile)?;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        eprintln!("sotto: this turn was not saved: {e}");
    }
}

#[cfg(test)]
mod tests {
    use sotto_channel::messages::Stop;

    use super::*;

    #[test]
    fn an_answer_cut_short_is_kept_as_incomplete() {
        let stopped = |stop| {
            Ok(Stats {
                stop,
                ..Stats::default()
            })
        };
        assert_eq!(ended(&stopped(Stop::End), "all of it"), Some(None));
        for stop in [Stop::MaxTokens, Stop::ContextFull] {
            assert_eq!(
                ended(&stopped(stop), "part of"),
                Some(Some(Incomplete::Length))
            );
        }
        let broke = || Err(ClientError::Closed("connection reset".into()));
        assert_eq!(
            ended(&broke(), "half an"),
            Some(Some(Incomplete::Interrupted))
        );
        assert_eq!(ended(&broke(), ""), None, "nothing came, nothing to keep");
    }
}

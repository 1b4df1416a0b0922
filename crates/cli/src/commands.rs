//! The `account` and `history` commands: argument shapes and what each does, printing results
//! for a person. Secrets (the recovery code) are printed only where the user asked for them.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use sotto_api::b64;

use crate::account;
use crate::history;
use crate::local::{write_private, Profile};

#[derive(Subcommand)]
pub enum AccountCommand {
    /// Create an account with a new passkey on this device; prints the recovery code once.
    Create {
        #[arg(long, default_value = "http://localhost:8080")]
        server: String,
        /// A name shown by authenticators next to the passkey.
        #[arg(long, default_value = "Sotto")]
        name: String,
        /// A label for this device's passkey.
        #[arg(long, default_value = "cli")]
        label: String,
    },
    /// Sign in with this device's passkey, or (with --recover) with the recovery code read from
    /// standard input, which also registers a passkey on this device.
    Login {
        #[arg(long, default_value = "http://localhost:8080")]
        server: String,
        #[arg(long)]
        recover: bool,
        #[arg(long, default_value = "cli")]
        label: String,
    },
    /// End the session on the server and on this device.
    Logout,
    /// List, add or remove the account's passkeys.
    Passkeys {
        #[command(subcommand)]
        command: Option<PasskeyCommand>,
    },
    /// Make a new recovery code (the old one stops working); prints it once.
    RecoveryCode,
    /// Delete the account and all its history from the server.
    Delete {
        /// Confirm: this cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
pub enum PasskeyCommand {
    List,
    /// Register another passkey in this device's passkey file.
    Add {
        #[arg(long, default_value = "cli")]
        label: String,
    },
    /// Remove a passkey by its id (as `passkeys list` shows it).
    Remove {
        credential_id: String,
    },
}

#[derive(Subcommand)]
pub enum HistoryCommand {
    /// Conversations, most recent first.
    List,
    /// One conversation (id or unique prefix).
    Show { id: String },
    /// Delete a conversation: its key and every record of it.
    Delete {
        id: String,
        #[arg(long)]
        yes: bool,
    },
    /// Rename a conversation or move it to a folder.
    Edit {
        id: String,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        folder: Option<String>,
    },
    /// Write conversations in plaintext to a file on this machine (or stdout).
    Export {
        /// One conversation; all when absent.
        id: Option<String>,
        #[arg(long, value_enum, default_value = "json")]
        format: ExportFormat,
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    Json,
    Markdown,
}

type AnyError = Box<dyn std::error::Error>;

fn show_recovery_code(code: &sotto_vault::RecoveryCode) {
    let text = code.to_text();
    println!();
    println!("Your recovery code (shown once; write it down and keep it offline):");
    println!();
    println!("    {}", text.as_str());
    println!();
    println!("It opens your history if you lose every passkey: `sotto account login --recover`.");
}

fn date(secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}

pub async fn account(profile: Profile, command: AccountCommand) -> Result<ExitCode, AnyError> {
    match command {
        AccountCommand::Create {
            server,
            name,
            label,
        } => {
            let (u, code) = account::create(&profile, &server, &name, &label).await?;
            println!(
                "Account {} created; this device is signed in.",
                u.session.account_id
            );
            show_recovery_code(&code);
        }
        AccountCommand::Login {
            server,
            recover,
            label,
        } => {
            let u = if recover {
                if std::io::stdin().is_terminal() {
                    eprint!("Recovery code: ");
                    let _ = std::io::stderr().flush();
                }
                let mut line = zeroize::Zeroizing::new(String::new());
                std::io::stdin().lock().read_line(&mut line)?;
                account::recover(&profile, &server, line.trim(), &label).await?
            } else {
                account::login(&profile, &server).await?
            };
            println!(
                "Signed in to account {}; history unlocked on this device.",
                u.session.account_id
            );
            u.save_ledger(&profile)?;
        }
        AccountCommand::Logout => {
            let (api, session) = account::signed_in(&profile)?;
            // The local session is forgotten even if the server is unreachable.
            let remote = api.sign_out().await;
            account::forget_local(&profile, &session, false)?;
            remote?;
            println!("Signed out.");
        }
        AccountCommand::Passkeys { command } => match command.unwrap_or(PasskeyCommand::List) {
            PasskeyCommand::List => {
                let (api, session) = account::signed_in(&profile)?;
                let info = api.account().await?;
                for p in info.passkeys {
                    let id = b64::encode(&p.credential_id);
                    let this = if id == session.credential_id {
                        " (this device)"
                    } else {
                        ""
                    };
                    let used = p.last_used_at.map(date).unwrap_or_else(|| "never".into());
                    println!(
                        "{id}  {}{this}  created {}  last used {used}",
                        p.name,
                        date(p.created_at)
                    );
                }
            }
            PasskeyCommand::Add { label } => {
                let mut u = account::unlock(&profile).await?;
                let cred = account::add_passkey(&profile, &mut u, &label).await?;
                println!("Passkey {} added.", b64::encode(&cred));
            }
            PasskeyCommand::Remove { credential_id } => {
                let (api, session) = account::signed_in(&profile)?;
                let cred = b64::decode(&credential_id)
                    .map_err(|_| "that is not a passkey id (see `sotto account passkeys list`)")?;
                api.remove_passkey(&cred).await?;
                if credential_id == session.credential_id {
                    account::forget_local(&profile, &session, true)?;
                }
                println!("Passkey removed.");
            }
        },
        AccountCommand::RecoveryCode => {
            let mut u = account::unlock(&profile).await?;
            let code = account::rotate_recovery(&mut u).await?;
            println!("The old recovery code no longer works.");
            show_recovery_code(&code);
        }
        AccountCommand::Delete { yes } => {
            if !yes {
                return Err(
                    "deleting the account destroys all its history; pass --yes to confirm".into(),
                );
            }
            let (api, session) = account::signed_in(&profile)?;
            api.delete_account().await?;
            account::forget_local(&profile, &session, true)?;
            println!(
                "Account {} and all its history deleted.",
                session.account_id
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn history(profile: Profile, command: HistoryCommand) -> Result<ExitCode, AnyError> {
    let mut u = account::unlock(&profile).await?;
    let synced = history::sync(&mut u).await;
    // The ledger is saved even when a record was refused: what was seen stays seen.
    u.save_ledger(&profile)?;
    let h = synced?;
    match command {
        HistoryCommand::List => {
            if h.conversations().is_empty() {
                println!("No saved conversations.");
            }
            for c in h.by_recency() {
                let folder = c
                    .header
                    .as_ref()
                    .map(|h| h.folder.as_str())
                    .filter(|f| !f.is_empty())
                    .map(|f| format!("[{f}] "))
                    .unwrap_or_default();
                println!(
                    "{}  {folder}{}  ({} messages, {})",
                    &c.id[..12],
                    c.title(),
                    c.messages.len(),
                    date(c.updated_at() / 1000)
                );
            }
        }
        HistoryCommand::Show { id } => {
            let c = h.find(&id)?;
            print!("{}", history::export_markdown(&[c]));
        }
        HistoryCommand::Delete { id, yes } => {
            let c = h.find(&id)?;
            if !yes {
                return Err(format!(
                    "this destroys conversation {:?} for good; pass --yes to confirm",
                    c.title()
                )
                .into());
            }
            let n = history::delete(&mut u, &c.id).await?;
            println!(
                "Deleted conversation {} ({n} records, key destroyed).",
                &c.id[..12]
            );
        }
        HistoryCommand::Edit { id, title, folder } => {
            let conv = h.find(&id)?.id.clone();
            history::edit_header(&mut u, &conv, title.as_deref(), folder.as_deref()).await?;
            u.save_ledger(&profile)?;
            println!("Saved.");
        }
        HistoryCommand::Export { id, format, output } => {
            let convs = match &id {
                Some(id) => vec![h.find(id)?],
                None => h.by_recency(),
            };
            let text = zeroize::Zeroizing::new(match format {
                ExportFormat::Json => history::export_json(&convs)?,
                ExportFormat::Markdown => history::export_markdown(&convs),
            });
            match output {
                Some(path) => {
                    write_private(&path, text.as_bytes())?;
                    eprintln!(
                        "Wrote {} conversations to {} (plaintext, mode 0600).",
                        convs.len(),
                        path.display()
                    );
                }
                None => print!("{}", text.as_str()),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `sotto account`: create an account, sign in and out, passkeys, the recovery code, deletion.
//! Secrets (the recovery code) are printed only where the user asked for them; what the server
//! sent (passkey names) is shown escaped.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::Subcommand;
use sotto_api::b64;

use super::{AnyError, ProfileArgs};
use crate::account;
use crate::term::shown;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub profile: ProfileArgs,
    #[command(subcommand)]
    pub command: AccountCommand,
}

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

fn show_recovery_code(code: &sotto_vault::RecoveryCode) {
    let text = code.to_text();
    println!();
    println!("Your recovery code (shown once; write it down and keep it offline):");
    println!();
    println!("    {}", text.as_str());
    println!();
    println!("It opens your history if you lose every passkey: `sotto account login --recover`.");
}

/// A server time (seconds since the epoch) for people.
pub(crate) fn date(secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}

pub async fn run(args: Args) -> Result<ExitCode, AnyError> {
    let profile = args.profile.profile();
    match args.command {
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
                        shown(&p.name),
                        date(p.created_at)
                    );
                }
            }
            PasskeyCommand::Add { label } => {
                let mut u = account::unlock(&profile).await?;
                let cred = account::add_passkey(&profile, &profile, &mut u, &label).await?;
                println!("Passkey {} added.", b64::encode(&cred));
            }
            PasskeyCommand::Remove { credential_id } => {
                let (_, session) = account::signed_in(&profile)?;
                let cred = b64::decode(&credential_id)
                    .map_err(|_| "that is not a passkey id (see `sotto account passkeys list`)")?;
                account::remove_passkey(&profile, &cred).await?;
                if credential_id == session.credential_id {
                    // Its sessions ended with it, this device's among them.
                    account::forget_local(&profile, &session, true)?;
                    println!("Passkey removed; this device is signed out.");
                } else {
                    println!("Passkey removed; the sessions it opened are ended.");
                }
            }
        },
        AccountCommand::RecoveryCode => {
            let mut u = account::unlock(&profile).await?;
            let code = account::rotate_recovery(&profile, &mut u).await?;
            println!("The old recovery code no longer works.");
            show_recovery_code(&code);
        }
        AccountCommand::Delete { yes } => {
            if !yes {
                return Err(
                    "deleting the account destroys all its history; pass --yes to confirm".into(),
                );
            }
            let (_, session) = account::signed_in(&profile)?;
            account::delete_account(&profile).await?;
            account::forget_local(&profile, &session, true)?;
            println!(
                "Account {} and all its history deleted.",
                session.account_id
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

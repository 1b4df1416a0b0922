//! `sotto up`: the whole stack on this machine: the untrusted server, an enclave (simulated
//! platform by default) with the default model, and, for the simulated platform, a development
//! release log that lists this very build, so clients can check it as they would a real one.

use std::process::ExitCode;

use sotto_server::ServerConfig;

use super::enclave::EnclaveArgs;
use super::server::AccountsArgs;
use super::AnyError;
use crate::devlog::{self, DevLog, EnclaveRelease};
use crate::stack;

#[derive(clap::Args)]
pub struct Args {
    /// Address the server listens on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    #[command(flatten)]
    pub enclave: EnclaveArgs,
    #[command(flatten)]
    pub accounts: AccountsArgs,
}

pub async fn run(args: Args) -> Result<ExitCode, AnyError> {
    let opts = args.enclave.options();
    let accounts = args.accounts;
    let data_dir = opts.data_dir.clone();
    stack::init_logging(&data_dir)?;
    let enclave = tokio::task::spawn_blocking(move || stack::boot_enclave(opts)).await??;
    let model = enclave.manifest().model.clone();
    let platform = enclave.manifest().platform.clone();
    let measurement = hex::encode(enclave.launch_measurement());
    let web = accounts.web_bundle()?;
    let devlog = match stack::simulated_measurement(&enclave) {
        Some(m) => {
            let release = devlog::release_of(&EnclaveRelease {
                manifest: enclave.manifest(),
                measurement: &m,
                web: web.as_deref().map(sotto_server::Bundle::release),
            });
            Some(DevLog::start(&data_dir, release).await?)
        }
        None => None,
    };
    let enclave_listener = stack::bind("127.0.0.1:0").await?;
    let enclave_addr = stack::local_addr(&enclave_listener);
    let enclave_task = stack::spawn_enclave(enclave, enclave_listener);
    let listener = stack::bind(&args.listen).await?;
    let addr = stack::local_addr(&listener);
    let mut config = ServerConfig::new(enclave_addr);
    config.collateral_dir = Some(data_dir.join("collateral"));
    config.accounts = Some(accounts.config(&data_dir, addr).await?);
    config.web = web;
    accounts.apply_network(&mut config);
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
    println!("  measurement: {measurement}");
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

//! `sotto hop`: run an independent hop in front of a Sotto server (sotto-hop). Anyone can run
//! one; a client that chats through it (`sotto chat --via URL`) shows the server the hop's
//! address instead of its own, and the hop sees that address and encrypted bytes only.

use std::process::ExitCode;
use std::time::Duration;

use sotto_hop::HopConfig;

use super::AnyError;

#[derive(clap::Args)]
pub struct Args {
    /// Where clients reach the hop.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: String,
    /// The server whose relay the hop forwards to, e.g. https://sotto.example (its relay is
    /// `<server>/v1/relay`).
    #[arg(long)]
    upstream: String,
    /// Connections forwarded at once; more are refused.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Seconds without a message either way before a connection is closed.
    #[arg(long, default_value_t = 600)]
    idle_secs: u64,
}

pub async fn run(args: Args) -> Result<ExitCode, AnyError> {
    let upstream = crate::client::relay_url(&args.upstream)?;
    let config = HopConfig {
        max_connections: args.max_connections,
        idle_timeout: Duration::from_secs(args.idle_secs),
        ..HopConfig::new(upstream.clone())
    };
    let router = sotto_hop::router(config)?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    println!(
        "hop: ws://{}{} -> {upstream}",
        listener.local_addr()?,
        sotto_hop::RELAY_PATH
    );
    axum::serve(listener, router).await?;
    Ok(ExitCode::SUCCESS)
}

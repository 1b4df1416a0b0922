//! `sotto proxy`: a local OpenAI-compatible endpoint (`http://HOST:PORT/v1`) that verifies the
//! enclave as `sotto chat` does, on every request, before it forwards anything (crate::proxy).

use std::net::SocketAddr;
use std::process::ExitCode;

use super::enclave_args::{EnclaveArgs, Route};
use super::{AnyError, ProfileArgs};
use crate::proxy::{router, ProxyConfig};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    route: Route,
    /// Where the OpenAI-compatible API listens. A non-loopback address needs --api-key.
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// Require `Authorization: Bearer KEY` on every request.
    #[arg(long, env = "SOTTO_PROXY_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Another Host header value to answer (`name:port`), e.g. for a container's name. The
    /// listen address, `localhost:PORT` and `[::1]:PORT` are always allowed; any other Host is
    /// refused, so a web page cannot reach the proxy by DNS rebinding.
    #[arg(long)]
    allow_host: Vec<String>,
    /// The answer length when a request sets no max_tokens.
    #[arg(long, default_value_t = 512)]
    max_tokens: u32,
    #[command(flatten)]
    enclave: EnclaveArgs,
    #[command(flatten)]
    profile: ProfileArgs,
}

pub async fn run(args: Args) -> Result<ExitCode, AnyError> {
    if !args.listen.ip().is_loopback() && args.api_key.is_none() {
        return Err(format!(
            "{} is reachable from other machines: set --api-key (or SOTTO_PROXY_API_KEY) to \
             listen there",
            args.listen
        )
        .into());
    }
    let checks = args.enclave.checks()?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr()?;
    let port = addr.port();
    let mut allowed_hosts = vec![
        addr.to_string(),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        format!("127.0.0.1:{port}"),
    ];
    allowed_hosts.extend(args.allow_host);
    let config = ProxyConfig {
        route: args.route,
        checks,
        profile: args.profile.profile(),
        allowed_hosts,
        api_key: args.api_key.as_deref().map(ProxyConfig::key_digest),
        max_tokens: args.max_tokens,
        wallet: Default::default(),
    };
    // The address on stdout's first line, for scripts (and the tests) that start the proxy.
    println!("sotto proxy listening on http://{addr}");
    eprintln!(
        "OpenAI-compatible API at http://{addr}/v1; every request verifies the enclave first"
    );
    axum::serve(listener, router(config)).await?;
    Ok(ExitCode::SUCCESS)
}

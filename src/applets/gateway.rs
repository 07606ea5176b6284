//! `dstore gateway` (1.x `egateway`): arguments turned into a `GatewayConfig`, then the server.

use crate::config::StoreArgs;
use crate::gateway::{self, GatewayConfig};
use anyhow::{bail, Context, Result};
use clap::{ArgMatches, Command, CommandFactory, FromArgMatches, Parser};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Serve the store over HTTP: the JSON API, the 1.x egateway endpoint, metrics, and the web UI at /
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    store: StoreArgs,
    /// Address to listen on; anything but loopback needs --token-file
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// File holding the bearer token API clients must send (Authorization: Bearer ...)
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Threads answering requests
    #[arg(long, value_name = "N", default_value_t = 4)]
    workers: usize,
    /// Most events one search returns
    #[arg(long, value_name = "N", default_value_t = 1000)]
    max_limit: u64,
    /// Seconds one search may run before it answers with what it found
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    time_budget: f64,
    /// Searches at once; more get 503
    #[arg(long, value_name = "N", default_value_t = 8)]
    max_searches: usize,
}

pub fn command() -> Command {
    Args::command()
}

pub fn run(m: &ArgMatches) -> Result<ExitCode> {
    let args = Args::from_arg_matches(m)?;
    let token = match &args.token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {}", path.display()))?;
            let token = text.trim().to_string();
            if token.len() < 16 {
                bail!(
                    "the token in {} is shorter than 16 characters",
                    path.display()
                );
            }
            Some(token)
        }
        None if !args.listen.ip().is_loopback() => {
            bail!("--listen {} is not loopback: give --token-file so that only clients with the token can read the store", args.listen)
        }
        None => None,
    };
    if !(args.time_budget.is_finite() && args.time_budget > 0.0) {
        bail!("--time-budget must be a positive number of seconds");
    }
    let config = GatewayConfig {
        storage_dir: args.store.resolve()?,
        listen: args.listen,
        token,
        workers: args.workers.max(1),
        max_limit: args.max_limit.max(1),
        time_budget: Duration::from_secs_f64(args.time_budget),
        max_searches: args.max_searches.max(1),
        search_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    gateway::run(config)?;
    Ok(ExitCode::SUCCESS)
}

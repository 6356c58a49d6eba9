//! `vouch node run | status | config`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use vouch_node::{Node, NodeConfig};

use crate::{Cli, Outcome, print_json};

#[derive(Subcommand)]
pub enum NodeCommand {
    /// Run a node until SIGINT or SIGTERM.
    Run(RunArgs),
    /// Show the node's identity and counters.
    Status,
    /// Print the resolved configuration.
    Config(HomeArgs),
    /// Executor nodes on the ledger: stake, slashes, endpoints.
    Ls,
}

#[derive(Args)]
pub struct HomeArgs {
    /// Node home: key, storage, config.toml.
    #[arg(long, env = "VOUCH_HOME")]
    home: Option<PathBuf>,
}

#[derive(Args)]
pub struct RunArgs {
    /// Without a genesis.json in the home, create a single-validator chain (a one-node network) instead of failing.
    #[arg(long)]
    dev: bool,
    #[command(flatten)]
    home: HomeArgs,
    /// HTTP listen address (overrides config.toml's `listen`).
    #[arg(long)]
    listen: Option<SocketAddr>,
}

fn resolve(home: &HomeArgs, listen: Option<SocketAddr>) -> anyhow::Result<(PathBuf, NodeConfig)> {
    let home = home.home.clone().unwrap_or_else(crate::default_home);
    let mut config = NodeConfig::load(&home)?;
    if let Some(l) = listen {
        config.listen = l;
    }
    Ok((home, config))
}

pub async fn run(cli: &Cli, cmd: &NodeCommand) -> anyhow::Result<Outcome> {
    match cmd {
        NodeCommand::Run(args) => {
            let (home, config) = resolve(&args.home, args.listen)?;
            init_tracing();
            let node = Node::start(&home, config, args.dev).await.context("starting node")?;
            // The first line of stdout is the API address: scripts and tests read it (port 0 binds any port).
            // Written without println!: a closed stdout must not take the node down.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "vouch node listening on http://{}", node.local_addr());
            let _ = writeln!(out, "node id {} home {}", node.node_id(), home.display());
            let _ = out.flush();
            drop(out);
            node.serve(shutdown_signal()).await?;
            Ok(Outcome::Ok)
        }
        NodeCommand::Status => {
            let s = vouch_api::Client::new(&cli.node).status().await?;
            if cli.json {
                print_json(&s)?;
            } else {
                crate::out!("node      {}", s.node_id);
                crate::out!("version   {} ({})", s.version, s.engine);
                crate::out!("network   {}", s.network);
                crate::out!("modes     {}", s.modes.join(", "));
                crate::out!("models    {}", s.models);
                crate::out!("receipts  {}", s.receipts);
                crate::out!("cached    {}", s.cached_models);
                crate::out!("uptime    {}s", s.uptime_s);
            }
            Ok(Outcome::Ok)
        }
        NodeCommand::Ls => {
            let nodes: serde_json::Value = vouch_api::Client::new(&cli.node).get("/v1/ledger/nodes").await?;
            if cli.json {
                print_json(&nodes)?;
            } else {
                for n in nodes.as_array().into_iter().flatten() {
                    let unbonding: u64 =
                        n["unbonding"].as_array().into_iter().flatten().filter_map(|u| u["amount"].as_u64()).sum();
                    crate::out!(
                        "{} stake {} unbonding {} slashed {} {}",
                        n["node"].as_str().unwrap_or("?"),
                        n["stake"],
                        unbonding,
                        n["slashed"],
                        n["endpoint"].as_str().unwrap_or("")
                    );
                }
            }
            Ok(Outcome::Ok)
        }
        NodeCommand::Config(home) => {
            let (_, config) = resolve(home, None)?;
            if cli.json {
                print_json(&config)?
            } else {
                crate::out!("{}", config.to_toml().trim_end_matches('\n'))
            }
            Ok(Outcome::Ok)
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VOUCH_LOG").unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("node.shutdown: signal received");
}

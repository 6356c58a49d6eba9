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
    /// Executor nodes on the ledger: stake, slashes, endpoints, TEE attestations.
    Ls,
    /// Detect this machine's TEE and print its platform, measurement and a report binding the node key, or why
    /// there is none (exit 1).
    Attest(AttestArgs),
}

#[derive(Args)]
pub struct TeeArgs {
    /// Use the simulated TEE platform (testing the plumbing only; never a TEE, and reported as simulated
    /// everywhere).
    #[arg(long)]
    tee_simulate: bool,
    /// The simulated platform's root key (created if absent); default `~/.vouch/tee-simulated-root.key`.
    #[arg(long, env = "VOUCH_TEE_SIMULATED_ROOT")]
    tee_simulated_root: Option<PathBuf>,
    /// Collateral attached to every attestation (TDX: DCAP collateral JSON from a PCCS; SEV-SNP: the VCEK DER if
    /// the host does not supply it).
    #[arg(long)]
    tee_collateral: Option<PathBuf>,
}

impl TeeArgs {
    fn apply(&self, config: &mut NodeConfig) {
        if self.tee_simulate {
            config.tee_simulate_root = Some(
                self.tee_simulated_root.clone().unwrap_or_else(|| crate::default_home().join("tee-simulated-root.key")),
            );
        }
        if let Some(c) = &self.tee_collateral {
            config.tee_collateral = Some(c.clone());
        }
    }
}

#[derive(Args)]
pub struct AttestArgs {
    #[command(flatten)]
    home: HomeArgs,
    #[command(flatten)]
    tee: TeeArgs,
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
    /// Where to listen for consensus peers when this node is not a genesis validator of a chain with epochs
    /// (overrides config.toml's `p2p`).
    #[arg(long)]
    p2p: Option<SocketAddr>,
    /// Replay the chain from genesis instead of taking the state from a peer when the chain storage is empty
    /// (overrides config.toml's `state_sync`).
    #[arg(long)]
    no_state_sync: bool,
    #[command(flatten)]
    tee: TeeArgs,
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
            let (home, mut config) = resolve(&args.home, args.listen)?;
            args.tee.apply(&mut config);
            if let Some(p) = args.p2p {
                config.p2p = Some(p);
            }
            if args.no_state_sync {
                config.state_sync = false;
            }
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
                crate::out!(
                    "settling  {} owed, {} batches pending, {} recorded (a batch every {} ms)",
                    s.settlement.owed,
                    s.settlement.pending_batches,
                    s.settlement.settled_batches,
                    s.settlement.interval_ms
                );
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
                    let a = &n["attestation"];
                    let tee = match a["platform"].as_str() {
                        None => "tee none".to_owned(),
                        Some(p) => format!(
                            "tee {p} {} {} measurement {}",
                            a["tcb_status"].as_str().unwrap_or("?"),
                            if a["valid"].as_bool() == Some(true) { "valid" } else { "expired" },
                            a["measurement"].as_str().map(|m| &m[..m.len().min(16)]).unwrap_or("?"),
                        ),
                    };
                    crate::out!(
                        "{} stake {} unbonding {} slashed {} {} {}",
                        n["node"].as_str().unwrap_or("?"),
                        n["stake"],
                        unbonding,
                        n["slashed"],
                        n["endpoint"].as_str().unwrap_or(""),
                        tee
                    );
                }
            }
            Ok(Outcome::Ok)
        }
        NodeCommand::Attest(args) => attest(cli, args),
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

/// `vouch node attest`: the platform this machine offers, and one report binding the node key (chain and freshness
/// zero: this report is for inspection, the node attests on the ledger by itself).
fn attest(cli: &Cli, args: &AttestArgs) -> anyhow::Result<Outcome> {
    let (home, mut config) = resolve(&args.home, None)?;
    args.tee.apply(&mut config);
    let opts = vouch_tee::attest::DetectOptions {
        simulate: config.tee_simulate_root.clone(),
        collateral: config.tee_collateral.clone(),
        ..Default::default()
    };
    let attester = match vouch_tee::detect(&opts) {
        Ok(a) => a,
        Err(no) => {
            if cli.json {
                print_json(&serde_json::json!({"platform": null, "reasons": no.reasons}))?;
            } else {
                crate::out!("{no}");
            }
            return Ok(Outcome::Invalid);
        }
    };
    let key = vouch_crypto::NodeKey::load_or_create(&home.join("node.key"))?;
    let now_ms = vouch_receipt::system_clock_ms();
    let ev = vouch_codec::TeeEvidence {
        key: key.public_key(),
        chain: [0; 32],
        freshness: [0; 32],
        attested_at_ms: now_ms,
        reports: vec![],
    };
    let report = attester.attest(&ev.report_data()).map_err(anyhow::Error::msg).context("attesting")?;
    let claims = vouch_tee::verify_report(&report, now_ms / 1000);
    if cli.json {
        let c = claims.as_ref().ok();
        print_json(&serde_json::json!({
            "platform": attester.platform().name(),
            "node": hex::encode(key.public_key()),
            "measurement": c.map(|c| hex::encode(&c.measurement)),
            "tcb": c.map(|c| format!("{:?}", c.tcb)),
            "verification": claims.as_ref().err().map(|e| e.to_string()),
            "report": hex::encode(&report.report),
            "collateral_bytes": report.collateral.len(),
        }))?;
    } else {
        crate::out!("platform     {}", attester.platform());
        crate::out!("node         {}", hex::encode(key.public_key()));
        match &claims {
            Ok(c) => {
                crate::out!("measurement  {}", hex::encode(&c.measurement));
                crate::out!("tcb          {:?}", c.tcb);
                crate::out!("verifies     yes (against the pinned vendor root, now)");
            }
            Err(e) => crate::out!("verifies     no: {e}"),
        }
        crate::out!("report       {} bytes: {}", report.report.len(), hex::encode(&report.report));
        crate::out!("collateral   {} bytes", report.collateral.len());
    }
    Ok(Outcome::Ok)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VOUCH_LOG").unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn shutdown_signal() {
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

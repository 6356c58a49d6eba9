//! `vouch devnet --nodes N`: writes one chain spec (validators, stakes, funded accounts) and starts N real
//! `vouch node run` processes on loopback, HTTP on P, P+1, ..., p2p on P+100, P+101, ...; stops them on SIGINT.

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{Context, bail};
use clap::Args;
use vouch_chain::spec::{AccountSpec, CONSENSUS_KEY_CONTEXT, ChainSpec, ValidatorSpec, consensus_public_hex};
use vouch_crypto::NodeKey;

use crate::{Cli, Outcome};

/// Balance of every devnet node's account and of the dev account.
const DEVNET_FUNDS: u64 = 1_000_000_000_000;

#[derive(Args)]
pub struct DevnetArgs {
    /// Number of validator nodes.
    #[arg(long, default_value_t = 4)]
    nodes: usize,
    /// Directory of the network (one sub-directory per node); reused on the next run.
    #[arg(long)]
    home: Option<PathBuf>,
    /// HTTP port of the first node (p2p ports start at this + 100).
    #[arg(long, default_value_t = 7100)]
    base_port: u16,
    /// Executed blocks between the nodes' local snapshots (default: the node's, 1,024).
    #[arg(long)]
    snapshot_every: Option<u64>,
    /// Fault injection for tests: the node with this index lies as a quorum executor (`fault_flip_outputs`: one bit
    /// of its output flipped, for a language model its first generated token), so the dispute path can be watched.
    #[arg(long, hide = true)]
    liar: Option<usize>,
    /// Run every node on the simulated TEE platform (one root for the devnet, listed in its genesis): `tee` mode
    /// end to end without confidential hardware. Never a TEE.
    #[arg(long)]
    tee_simulate: bool,
    /// Seconds an attestation stays valid on this devnet's ledger (default: the chain parameter's, one day).
    #[arg(long, hide = true)]
    tee_attestation_ttl: Option<u64>,
    /// Blocks per epoch: validators then join and leave by bonding stake (`vouch tx bond-validator`), effective at
    /// epoch boundaries. Default: a fixed set.
    #[arg(long)]
    epoch_length: Option<u64>,
}

pub async fn run(_cli: &Cli, a: &DevnetArgs) -> anyhow::Result<Outcome> {
    if a.nodes == 0 || a.nodes > 64 {
        bail!("--nodes must be between 1 and 64");
    }
    let home = a.home.clone().unwrap_or_else(|| crate::default_home().join("devnet"));
    std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
    let dev = NodeKey::load_or_create(&home.join("dev-account.key"))?;
    let mut validators = vec![];
    let mut accounts = vec![AccountSpec { address: hex::encode(dev.public_key()), balance: DEVNET_FUNDS }];
    for i in 0..a.nodes {
        let dir = home.join(format!("node{i}"));
        let key = NodeKey::load_or_create(&dir.join("node.key"))?;
        let http = a.base_port.checked_add(i as u16).context("port out of range")?;
        let p2p = a.base_port.checked_add(100 + i as u16).context("port out of range")?;
        validators.push(ValidatorSpec {
            consensus_key: consensus_public_hex(&key.derive_seed(CONSENSUS_KEY_CONTEXT)),
            node_id: hex::encode(key.public_key()),
            p2p: ([127, 0, 0, 1], p2p).into(),
            api: format!("http://127.0.0.1:{http}"),
        });
        accounts.push(AccountSpec { address: hex::encode(key.public_key()), balance: DEVNET_FUNDS });
        let mut config = format!("listen = \"127.0.0.1:{http}\"\n");
        if let Some(n) = a.snapshot_every {
            config.push_str(&format!("snapshot_every_blocks = {n}\n"));
        }
        if a.liar == Some(i) {
            config.push_str("fault_flip_outputs = true\n");
        }
        if a.tee_simulate {
            config.push_str(&format!("tee_simulate_root = {:?}\n", home.join("tee-simulated-root.key")));
        }
        std::fs::write(dir.join("config.toml"), config)?;
    }
    let mut params = vouch_ledger::Params::default();
    if a.tee_simulate {
        let root = vouch_tee::simulated::SimulatedRoot::load_or_create(&home.join("tee-simulated-root.key"))
            .map_err(anyhow::Error::msg)?;
        params.tee.simulated_roots.push(hex::encode(root.public_key()));
    }
    if let Some(ttl) = a.tee_attestation_ttl {
        params.tee.attestation_ttl_s = ttl;
    }
    if let Some(l) = a.epoch_length {
        params.validators.epoch_length = l;
    }
    let spec = ChainSpec { accounts, params, validators };
    spec.genesis().map_err(anyhow::Error::msg)?;
    let text = serde_json::to_string_pretty(&spec)?;
    std::fs::write(home.join("genesis.json"), &text)?;
    for i in 0..a.nodes {
        let path = home.join(format!("node{i}")).join("genesis.json");
        match std::fs::read_to_string(&path) {
            Ok(old) if old != text => bail!(
                "{} belongs to another network (different ports or node count); use another --home",
                path.display()
            ),
            _ => std::fs::write(&path, &text)?,
        }
    }

    let exe = std::env::current_exe().context("locating the vouch binary")?;
    let mut children = vec![];
    for (i, v) in spec.validators.iter().enumerate() {
        let dir = home.join(format!("node{i}"));
        let log = std::fs::File::create(dir.join("node.log"))?;
        let child = tokio::process::Command::new(&exe)
            .args(["node", "run", "--home"])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting node {i}"))?;
        crate::out!("node {i} {} (p2p {}, home {})", v.api, v.p2p, dir.display());
        children.push(child);
    }
    crate::out!(
        "devnet of {} nodes running; genesis {}; dev account key {}",
        a.nodes,
        home.join("genesis.json").display(),
        home.join("dev-account.key").display()
    );
    // SIGTERM too: dying of it would orphan the nodes (`kill_on_drop` runs only when the devnet exits normally).
    crate::node::shutdown_signal().await;
    for c in &mut children {
        if let Some(pid) = c.id() {
            // SIGTERM: each node shuts down cleanly.
            let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        }
    }
    for mut c in children {
        let _ = c.wait().await;
    }
    Ok(Outcome::Ok)
}

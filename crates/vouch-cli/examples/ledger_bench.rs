//! Ledger throughput and finality on a real 4-node loopback devnet.
//!
//! Starts `vouch devnet --nodes 4` (the release binary), then submits `--txs` signed settlement transactions from
//! the devnet's funded accounts, round-robin over the four nodes' HTTP APIs, as fast as the client can: with
//! `--batch 1` (the default) `SettleReceipt`s, one settled receipt each; with `--batch N` `SettleBatch`es, each the
//! Merkle root over N receipt ids (what a node's settlement batcher submits). It follows finalized blocks on node 0
//! and reports settled receipts per second (first submission to last finalization), the finality latency of each
//! transaction (submission to the first poll that sees it finalized; polls every 20 ms), p50 and p99, and each node
//! process's resident memory at the end.
//!
//! `cargo build --release -p vouch-cli && cargo run --release -p vouch-cli --example ledger_bench -- --txs 20000`
//! `... --example ledger_bench -- --txs 2000 --batch 512` (about 1M settled receipts)
//! `... --example ledger_bench -- --txs 2000 --batch 512 --epoch-length 50` (the same on a chain with epochs)
//! `... --example ledger_bench -- --txs 20000 --epoch-length 50 --resync` (then node 3 loses its chain storage and
//! comes back, by state sync and by replaying from genesis)
//! `... --example ledger_bench -- --txs 200000 --transfers` (each transaction a transfer to a new address: the ledger
//! gains one account per transaction; reports each node's ledger store, accounts on disk and entries in memory)

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vouch_api::Client;
use vouch_codec::tx::{SignedTx, Tx, TxKind};
use vouch_codec::{Digest, domain};
use vouch_crypto::NodeKey;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_owned())
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n_txs: usize = arg("--txs", "20000").parse()?;
    let batch: u32 = arg("--batch", "1").parse()?;
    anyhow::ensure!(batch >= 1, "--batch is at least 1");
    let base: u16 = arg("--base-port", "7400").parse()?;
    let bin = PathBuf::from(arg("--vouch", "target/release/vouch"));
    let home = tempfile::tempdir()?;
    let dir = match std::env::var_os("LEDGER_BENCH_HOME") {
        Some(d) => PathBuf::from(d), // kept afterwards, with each node's log
        None => home.path().to_owned(),
    };
    // `--epoch-length N`: a chain whose validator set is re-fixed every N blocks (one consensus engine per epoch).
    let epoch_length = arg("--epoch-length", "0");
    let mut devnet = Command::new(&bin)
        .args(["devnet", "--nodes", "4", "--base-port", &base.to_string()])
        .args(if epoch_length == "0" { vec![] } else { vec!["--epoch-length", epoch_length.as_str()] })
        .arg("--home")
        .arg(&dir)
        .env("VOUCH_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    let urls: Vec<String> = (0..4).map(|i| format!("http://127.0.0.1:{}", base + i)).collect();
    let clients: Vec<Client> = urls.iter().map(|u| Client::new(u)).collect();
    let transfers = std::env::args().any(|a| a == "--transfers");
    let result = run(&clients, &dir, n_txs, batch, transfers).await;
    // Resident memory of each node process (the devnet's children, spawned from any of its threads), after the run.
    let mut children = vec![];
    for task in std::fs::read_dir(format!("/proc/{}/task", devnet.id()))?.flatten() {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        children.extend(list.split_whitespace().map(str::to_owned));
    }
    for pid in &children {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or("VmRSS: ?");
        let hwm = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or("VmHWM: ?");
        println!(
            "node pid {pid} {} (peak {})",
            rss.split_whitespace().skip(1).collect::<Vec<_>>().join(" "),
            hwm.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")
        );
    }
    // `--resync`: node 3 loses its chain storage and restarts, once taking the state from its peers and once
    // replaying the chain from genesis; each time until it is back at the height the others had when it restarted.
    let mut restarted = vec![];
    if result.is_ok() && std::env::args().any(|a| a == "--resync") {
        for (how, extra) in [("state sync", None), ("replay from genesis", Some("--no-state-sync"))] {
            match resync(&bin, &dir, &clients, extra).await {
                Ok((child, secs, target, synced)) => {
                    restarted.push(child);
                    println!("node 3 back at height {target} in {secs:.2} s by {how} (state synced at {synced})");
                }
                Err(e) => println!("node 3 resync by {how} failed: {e}"),
            }
        }
    }
    for mut child in restarted {
        let _ = Command::new("kill").arg("-INT").arg(child.id().to_string()).status();
        let _ = child.wait();
    }
    let _ = Command::new("kill").arg("-INT").arg(devnet.id().to_string()).status();
    let _ = devnet.wait();
    result
}

/// Kills node 3, removes its chain storage, restarts it (with `extra`), and times its return to the height node 0
/// had at the restart: (the process, seconds, that height, the height it state-synced at).
async fn resync(
    bin: &std::path::Path,
    dir: &std::path::Path,
    clients: &[Client],
    extra: Option<&str>,
) -> anyhow::Result<(std::process::Child, f64, u64, Value)> {
    let home = dir.join("node3");
    let pids = Command::new("pgrep").arg("-f").arg(format!("node run --home {}", home.display())).output()?;
    for pid in String::from_utf8(pids.stdout)?.split_whitespace() {
        Command::new("kill").args(["-KILL", pid]).status()?;
        while std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| !s.contains("State:\tZ")) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    std::fs::remove_dir_all(home.join("chain"))?;
    let status: Value = clients[0].get("/v1/ledger/status").await?;
    let target = status["height"].as_u64().unwrap_or(0);
    let t = Instant::now();
    let child = Command::new(bin)
        .args(["node", "run", "--home"])
        .arg(&home)
        .args(extra)
        .env("VOUCH_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    loop {
        if let Ok(s) = clients[3].get::<Value>("/v1/ledger/status").await
            && s["height"].as_u64().unwrap_or(0) >= target
        {
            return Ok((child, t.elapsed().as_secs_f64(), target, s["state_synced_at"].clone()));
        }
        anyhow::ensure!(t.elapsed() < Duration::from_secs(600), "node 3 not back after 600 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn run(
    clients: &[Client],
    home: &std::path::Path,
    n_txs: usize,
    batch: u32,
    transfers: bool,
) -> anyhow::Result<()> {
    // Wait for the chain to finalize.
    let start = Instant::now();
    loop {
        let ok = futures_util::future::join_all(clients.iter().map(|c| c.get::<Value>("/v1/ledger/status"))).await;
        if ok.iter().all(|s| s.as_ref().is_ok_and(|s| s["height"].as_u64().unwrap_or(0) >= 2)) {
            break;
        }
        anyhow::ensure!(start.elapsed() < Duration::from_secs(120), "devnet did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Nodes register themselves as executors from their own accounts: wait for that, so the nonces read below are
    // not consumed concurrently.
    loop {
        let nodes: Value = clients[0].get("/v1/ledger/nodes").await?;
        if nodes.as_array().is_some_and(|n| n.len() == clients.len()) {
            break;
        }
        anyhow::ensure!(start.elapsed() < Duration::from_secs(120), "nodes did not register");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("devnet up after {:.1} s", start.elapsed().as_secs_f64());
    let status: Value = clients[0].get("/v1/ledger/status").await?;
    let chain: [u8; 32] = hex::decode(status["chain_id"].as_str().unwrap())?.try_into().unwrap();
    let keys: Vec<NodeKey> = std::iter::once(home.join("dev-account.key"))
        .chain((0..4).map(|i| home.join(format!("node{i}/node.key"))))
        .map(|p| NodeKey::load_or_create(&p))
        .collect::<Result<_, _>>()?;
    // Sign everything up front: the measurement is the ledger's, not the client's signing speed.
    let mut nonces: HashMap<[u8; 32], u64> = HashMap::new();
    for k in &keys {
        let a: Value = clients[0].get(&format!("/v1/ledger/accounts/{}", hex::encode(k.public_key()))).await?;
        nonces.insert(k.public_key(), a["nonce"].as_u64().unwrap_or(0));
    }
    let txs: Vec<(String, Vec<u8>)> = (0..n_txs)
        .map(|i| {
            let k = &keys[i % keys.len()];
            let nonce = nonces.get_mut(&k.public_key()).unwrap();
            let receipt = |j: u32| {
                Digest(*blake3::hash(&[(i as u64).to_le_bytes(), u64::from(j).to_le_bytes()].concat()).as_bytes())
            };
            let kind = if transfers {
                TxKind::Transfer { to: *blake3::hash(&(i as u64).to_le_bytes()).as_bytes(), amount: 1 }
            } else if batch == 1 {
                TxKind::SettleReceipt { receipt: receipt(0) }
            } else {
                let ids: Vec<Digest> = (0..batch).map(receipt).collect();
                let b = vouch_chain::batch::Batch::new(&ids, &k.public_key());
                TxKind::SettleBatch { root: b.root(), count: b.count() }
            };
            let tx = Tx { chain, from: k.public_key(), nonce: *nonce, fee: 1, kind };
            *nonce += 1;
            let signature = k.sign(domain::TX_SIGNATURE, &tx.id().0);
            (tx.id().to_hex(), SignedTx { tx, signature }.to_bytes())
        })
        .collect();
    let first_height = status["height"].as_u64().unwrap();

    // Follow finalized blocks on node 0 while submitting.
    let follower = {
        let c = clients[0].clone();
        let ours: std::collections::HashSet<String> = txs.iter().map(|(id, _)| id.clone()).collect();
        tokio::spawn(async move {
            let mut seen: HashMap<String, Instant> = HashMap::new();
            let mut next = first_height + 1;
            let deadline = Instant::now() + Duration::from_secs(120 + n_txs as u64 / 1_000);
            while seen.len() < n_txs && Instant::now() < deadline {
                match c.get::<Value>(&format!("/v1/ledger/blocks/{next}")).await {
                    Ok(b) => {
                        let now = Instant::now();
                        for t in b["txs"].as_array().into_iter().flatten() {
                            let id = t["id"].as_str().unwrap_or_default();
                            if !ours.contains(id) {
                                // The nodes' own transactions (registrations, their settlements).
                            } else if t["result"]["ok"] == true {
                                seen.insert(id.to_owned(), now);
                            } else {
                                eprintln!("tx {} failed: {}", t["id"], t["result"]);
                            }
                        }
                        next += 1;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
            seen
        })
    };
    let t0 = Instant::now();
    let mut submitted: HashMap<String, Instant> = HashMap::new();
    // Per node, in nonce order per sender (each sender's transactions go to one node).
    let mut per_node: Vec<Vec<(String, Vec<u8>)>> = vec![vec![]; clients.len()];
    for (i, t) in txs.into_iter().enumerate() {
        per_node[(i % keys.len()) % clients.len()].push(t);
    }
    let stamps = futures_util::future::join_all(per_node.into_iter().zip(clients.iter().cloned()).map(
        |(batch, c)| async move {
            let mut out = vec![];
            for (id, bytes) in batch {
                let at = Instant::now();
                if let Err(e) = c.submit_tx(bytes).await {
                    eprintln!("submit {id}: {e}");
                    continue;
                }
                out.push((id, at));
            }
            out
        },
    ))
    .await;
    for s in stamps.into_iter().flatten() {
        submitted.insert(s.0, s.1);
    }
    let submit_s = t0.elapsed().as_secs_f64();
    eprintln!("submitted {n_txs} in {submit_s:.2} s");
    let seen = follower.await?;
    let last = seen.values().max().copied().unwrap_or(t0);
    let mut lat: Vec<f64> =
        seen.iter().filter_map(|(id, at)| submitted.get(id).map(|s| at.duration_since(*s).as_secs_f64())).collect();
    lat.sort_by(f64::total_cmp);
    anyhow::ensure!(!lat.is_empty(), "nothing settled");
    let elapsed = last.duration_since(t0).as_secs_f64();
    println!(
        "submitted {} of {n_txs} txs in {submit_s:.2} s; settled {} in {elapsed:.2} s",
        submitted.len(),
        seen.len()
    );
    println!(
        "settled receipts/s {:.0} ({} receipts per transaction; {:.0} transactions/s)",
        seen.len() as f64 * f64::from(batch) / elapsed,
        batch,
        seen.len() as f64 / elapsed
    );
    let status: Value = clients[0].get("/v1/ledger/status").await?;
    println!("ledger settled receipts {}", status["settled_receipts"]);
    for (i, c) in clients.iter().enumerate() {
        let s: Value = c.get("/v1/ledger/status").await?;
        println!("node {i} ledger store {}", s["state_store"]);
    }
    println!(
        "finality latency p50 {:.3} s p99 {:.3} s max {:.3} s",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat[lat.len() - 1]
    );
    Ok(())
}

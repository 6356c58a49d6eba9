//! Memory and execution speed of a chain whose ledger gains one account per transaction, with the accounts in
//! memory (`--memory`) or in the ledger store on disk (`--disk`, checkpointed every `--checkpoint-every` blocks as
//! a validator does). Executes blocks of signed transfers to fresh addresses directly on a [`Chain`] (no consensus,
//! no network: what is measured is the ledger state), and prints the process's resident memory every `--report`
//! accounts. Run each mode in its own process, so one's heap does not count in the other's:
//!
//! `cargo run --release -p vouch-chain --example store_bench -- --memory --accounts 1000000`
//! `cargo run --release -p vouch-chain --example store_bench -- --disk --accounts 1000000`

use std::time::Instant;

use bytes::Bytes;
use vouch_chain::index::TxIndex;
use vouch_chain::store::StateStore;
use vouch_chain::{Block, Chain};
use vouch_codec::domain;
use vouch_codec::tx::{SignedTx, Tx, TxKind};
use vouch_crypto::NodeKey;
use vouch_ledger::{Genesis, Params};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_owned())
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    kb / 1024.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let accounts: u64 = arg("--accounts", "1000000").parse()?;
    let per_block: u64 = arg("--per-block", "1000").parse()?;
    let report: u64 = arg("--report", "200000").parse()?;
    let every: u64 = arg("--checkpoint-every", "64").parse()?;
    let disk = std::env::args().any(|a| a == "--disk");
    if !disk && !std::env::args().any(|a| a == "--memory") {
        return Err("pass --memory or --disk".into());
    }
    let dir = tempfile::tempdir()?;
    let alice = NodeKey::from_secret([1; 32]);
    let genesis =
        Genesis { accounts: vec![(alice.public_key(), u64::MAX / 2)], params: Params::default(), validators: vec![] };
    let index = TxIndex::open(&dir.path().join("txindex.redb"))?;
    let chain = if disk {
        Chain::on_disk(genesis, index, 16, StateStore::open(&dir.path().join("state.redb"))?)
    } else {
        Chain::with_index(genesis, index, 16)
    };
    let start_rss = rss_mb();
    println!("mode {} start rss {start_rss:.1} MB", if disk { "disk" } else { "memory" });
    let mut parent = chain.genesis_block().header().digest();
    let (mut nonce, mut made, mut h) = (0u64, 0u64, 0u64);
    let t0 = Instant::now();
    let mut exec_s = 0.0;
    while made < accounts {
        h += 1;
        let n = per_block.min(accounts - made);
        let txs: Vec<Bytes> = (0..n)
            .map(|i| {
                let to = *blake3::hash(&(made + i).to_le_bytes()).as_bytes();
                let tx = Tx {
                    chain: chain.chain_id(),
                    from: alice.public_key(),
                    nonce,
                    fee: 1,
                    kind: TxKind::Transfer { to, amount: 1 },
                };
                nonce += 1;
                let signature = alice.sign(domain::TX_SIGNATURE, &tx.id().0);
                Bytes::from(SignedTx { tx, signature }.to_bytes())
            })
            .collect();
        let block = Block::new(parent, h, h, txs);
        parent = block.header().digest();
        let t = Instant::now();
        if !chain.execute(&block) {
            return Err(format!("block {h} did not execute").into());
        }
        if disk && h % every == 0 {
            chain.checkpoint();
        }
        exec_s += t.elapsed().as_secs_f64();
        let before = made;
        made += n;
        if made / report > before / report || made == accounts {
            let store = chain.store_status();
            println!(
                "accounts {made:>9} rss {:>7.1} MB (+{:.1}) resident entries {:>8} on disk {:>9} executed {:.0} tx/s",
                rss_mb(),
                rss_mb() - start_rss,
                chain.resident_entries(),
                store.map_or(0, |s| s.accounts_on_disk),
                made as f64 / exec_s
            );
        }
    }
    let root = chain.state_root();
    println!("state root {} after {h} blocks, {:.1} s in all", root.to_hex(), t0.elapsed().as_secs_f64());
    Ok(())
}

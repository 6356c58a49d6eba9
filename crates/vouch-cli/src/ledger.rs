//! `vouch ledger status|nodes|block|tx|validators|epochs`, `vouch account show|new`,
//! `vouch tx transfer|add-stake|unbond|bond-validator|unbond-validator`.

use anyhow::Context;
use clap::Subcommand;
use serde_json::Value;
use vouch_api::Client;

use crate::{Cli, Outcome, print_json};

#[derive(Subcommand)]
pub enum LedgerCommand {
    /// Height, validators, last finalized block, state root.
    Status,
    /// Executor nodes with stake and slashes.
    Nodes,
    /// A finalized block by height.
    Block {
        /// Height.
        height: u64,
    },
    /// A finalized transaction by id.
    Tx {
        /// Transaction id (hex).
        id: String,
    },
    /// How the validator set changes: the epoch, the sets fixed, the bonded keys.
    Validators,
    /// The epoch links proving every validator set after the genesis one (JSON for `vouch verify --epochs`).
    Epochs,
}

#[derive(Subcommand)]
pub enum AccountCommand {
    /// Balance and nonce of an account.
    Show {
        /// Address (hex).
        address: String,
    },
    /// Creates an account key file (mode 0600) and prints its address; fund it with a transfer.
    New {
        /// Where to write the key (refuses to overwrite).
        file: std::path::PathBuf,
    },
}

/// Options every `vouch tx` command takes.
#[derive(clap::Args)]
pub struct TxOpts {
    /// The sending account's key file (`vouch account new`; a node operator's is the node's `node.key`).
    #[arg(long, env = "VOUCH_ACCOUNT")]
    account: std::path::PathBuf,
    /// Wait until the transaction is finalized and print its result.
    #[arg(long)]
    wait: bool,
}

#[derive(Subcommand)]
pub enum TxCommand {
    /// Move tokens to another account.
    Transfer {
        /// Recipient address (hex).
        #[arg(long)]
        to: String,
        /// Amount.
        #[arg(long)]
        amount: u64,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Lock more stake on a node this account operates.
    AddStake(StakeArgs),
    /// Start returning stake of a node this account operates (released after the chain's unbonding delay, slashable
    /// until then).
    Unbond(StakeArgs),
    /// Bond stake on a node's consensus key (chains with epochs): with at least the minimum validator stake it is a
    /// candidate for the validator set of the epoch after next. Signed by the account; the node key proves the
    /// consensus key is its own.
    BondValidator {
        /// The node's key file (`node.key` in its home): its consensus key is derived from it.
        #[arg(long)]
        node_key: std::path::PathBuf,
        /// Where that node listens for consensus peers (`ip:port`, its `--p2p`); may be omitted when adding stake.
        #[arg(long, default_value = "")]
        p2p: String,
        /// Stake locked from the account.
        #[arg(long)]
        stake: u64,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Unbond all of a validator key's stake (it leaves the set at the epoch after next; the stake returns after
    /// that plus the chain's validator unbonding delay).
    UnbondValidator {
        /// The node's key file (its consensus key is derived from it).
        #[arg(long)]
        node_key: std::path::PathBuf,
        #[command(flatten)]
        opts: TxOpts,
    },
}

/// A node key file's consensus key: its public half, and its proof of possession for `account`.
fn consensus_key_of(node_key: &std::path::Path, account: &[u8; 32]) -> anyhow::Result<([u8; 32], [u8; 64])> {
    let key = vouch_crypto::NodeKey::load(node_key).with_context(|| format!("loading {}", node_key.display()))?;
    Ok(vouch_verify::sign::consensus_key(&key, account))
}

/// A node and an amount of stake.
#[derive(clap::Args)]
pub struct StakeArgs {
    /// Node id (hex).
    #[arg(long)]
    node_id: String,
    /// Amount.
    #[arg(long)]
    amount: u64,
    #[command(flatten)]
    opts: TxOpts,
}

fn address(what: &str, hex_str: &str) -> anyhow::Result<[u8; 32]> {
    let mut a = [0u8; 32];
    hex::decode_to_slice(hex_str, &mut a).map_err(|_| anyhow::anyhow!("{what} is 64 hex characters"))?;
    Ok(a)
}

fn account_key(opts: &TxOpts) -> anyhow::Result<vouch_crypto::NodeKey> {
    vouch_crypto::NodeKey::load(&opts.account).with_context(|| format!("loading {}", opts.account.display()))
}

pub async fn tx(cli: &Cli, cmd: &TxCommand) -> anyhow::Result<Outcome> {
    use vouch_codec::tx::{Tx, TxKind};
    let (kind, opts) = match cmd {
        TxCommand::Transfer { to, amount, opts } => {
            (TxKind::Transfer { to: address("--to", to)?, amount: *amount }, opts)
        }
        TxCommand::AddStake(a) => {
            (TxKind::AddStake { node: address("--node-id", &a.node_id)?, amount: a.amount }, &a.opts)
        }
        TxCommand::Unbond(a) => (TxKind::Unbond { node: address("--node-id", &a.node_id)?, amount: a.amount }, &a.opts),
        TxCommand::BondValidator { node_key, p2p, stake, opts } => {
            let account = account_key(opts)?.public_key();
            let (key, key_signature) = consensus_key_of(node_key, &account)?;
            (TxKind::BondValidator { key, p2p: p2p.clone(), stake: *stake, key_signature }, opts)
        }
        TxCommand::UnbondValidator { node_key, opts } => {
            let account = account_key(opts)?.public_key();
            (TxKind::UnbondValidator { key: consensus_key_of(node_key, &account)?.0 }, opts)
        }
    };
    let key = account_key(opts)?;
    let c = Client::new(&cli.node);
    let status: Value = c.get("/v1/ledger/status").await?;
    let genesis: Value = c.get("/v1/ledger/genesis").await?;
    let from = key.public_key();
    let account: Value = c.get(&format!("/v1/ledger/accounts/{}", hex::encode(from))).await?;
    let tx = Tx {
        chain: address("the node's chain id", status["chain_id"].as_str().unwrap_or_default())?,
        from,
        nonce: account["next_nonce"].as_u64().context("the node sent no next nonce")?,
        fee: genesis["params"]["min_fee"].as_u64().unwrap_or(1),
        kind,
    };
    let id = c.submit_tx(vouch_verify::sign::tx(&key, tx).to_bytes()).await?;
    if !opts.wait {
        if cli.json {
            print_json(&serde_json::json!({"id": id}))?
        } else {
            crate::out!("{id}")
        }
        return Ok(Outcome::Ok);
    }
    let start = std::time::Instant::now();
    let record: Value = loop {
        match c.get::<Value>(&format!("/v1/ledger/txs/{id}")).await {
            Ok(v) => break v,
            Err(vouch_api::ClientError::Api { status, .. }) if status == 404 && start.elapsed().as_secs() < 60 => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
            Err(e) => return Err(e.into()),
        }
    };
    print_json(&record)?;
    if record["result"]["ok"] == Value::Bool(true) {
        Ok(Outcome::Ok)
    } else {
        anyhow::bail!("transaction {id} failed: {}", record["result"]["error"].as_str().unwrap_or("?"))
    }
}

pub async fn run(cli: &Cli, cmd: &LedgerCommand) -> anyhow::Result<Outcome> {
    let c = Client::new(&cli.node);
    let v: Value = match cmd {
        LedgerCommand::Status => c.get("/v1/ledger/status").await?,
        LedgerCommand::Nodes => c.get("/v1/ledger/nodes").await?,
        LedgerCommand::Block { height } => c.get(&format!("/v1/ledger/blocks/{height}")).await?,
        LedgerCommand::Tx { id } => c.get(&format!("/v1/ledger/txs/{id}")).await?,
        LedgerCommand::Validators => c.get("/v1/ledger/validators").await?,
        LedgerCommand::Epochs => c.epoch_links().await?,
    };
    if cli.json || !matches!(cmd, LedgerCommand::Status | LedgerCommand::Validators) {
        print_json(&v)?;
    } else if matches!(cmd, LedgerCommand::Validators) {
        if v["epochs"] != Value::Bool(true) {
            crate::out!("fixed validator set (no epochs)");
        } else {
            crate::out!(
                "epoch       {} (ends at height {}; {} blocks per epoch)",
                v["epoch"],
                v["epoch_ends_at"],
                v["epoch_length"]
            );
        }
        for set in v["sets"].as_array().into_iter().flatten() {
            let keys: Vec<&str> =
                set["validators"].as_array().into_iter().flatten().filter_map(|k| k.as_str()).collect();
            crate::out!("set {:<7} {}", set["epoch"], keys.iter().map(|k| &k[..16]).collect::<Vec<_>>().join(" "));
        }
        for b in v["bonded"].as_array().into_iter().flatten() {
            crate::out!(
                "bonded      {} stake {} {}",
                b["key"].as_str().unwrap_or("?"),
                b["stake"],
                b["p2p"].as_str().unwrap_or("")
            );
        }
        print_json(&v)?;
    } else {
        crate::out!("chain       {}", v["chain_id"].as_str().unwrap_or("?"));
        crate::out!("height      {}", v["height"]);
        crate::out!("last block  {}", v["last_block_hash"].as_str().unwrap_or("?"));
        crate::out!("state root  {}", v["state_root"].as_str().unwrap_or("?"));
        crate::out!("receipts    {} settled", v["settled_receipts"]);
        for val in v["validators"].as_array().into_iter().flatten() {
            crate::out!(
                "validator   {} {}",
                val["node_id"].as_str().unwrap_or("?"),
                val["api"].as_str().unwrap_or("?")
            );
        }
    }
    Ok(Outcome::Ok)
}

pub async fn account(cli: &Cli, cmd: &AccountCommand) -> anyhow::Result<Outcome> {
    let address = match cmd {
        AccountCommand::Show { address } => address,
        AccountCommand::New { file } => {
            if file.exists() {
                anyhow::bail!("{} exists; not overwriting a key", file.display());
            }
            let key = vouch_crypto::NodeKey::load_or_create(file)?;
            crate::out!("{}", hex::encode(key.public_key()));
            return Ok(Outcome::Ok);
        }
    };
    let v: Value = Client::new(&cli.node).get(&format!("/v1/ledger/accounts/{address}")).await?;
    print_json(&v)?;
    Ok(Outcome::Ok)
}

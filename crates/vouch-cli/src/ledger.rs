//! `vouch ledger status`, `vouch ledger nodes`, `vouch account show`.

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

pub async fn run(cli: &Cli, cmd: &LedgerCommand) -> anyhow::Result<Outcome> {
    let c = Client::new(&cli.node);
    let v: Value = match cmd {
        LedgerCommand::Status => c.get("/v1/ledger/status").await?,
        LedgerCommand::Nodes => c.get("/v1/ledger/nodes").await?,
        LedgerCommand::Block { height } => c.get(&format!("/v1/ledger/blocks/{height}")).await?,
        LedgerCommand::Tx { id } => c.get(&format!("/v1/ledger/txs/{id}")).await?,
    };
    if cli.json || !matches!(cmd, LedgerCommand::Status) {
        print_json(&v)?;
    } else {
        println!("chain       {}", v["chain_id"].as_str().unwrap_or("?"));
        println!("height      {}", v["height"]);
        println!("last block  {}", v["last_block_hash"].as_str().unwrap_or("?"));
        println!("state root  {}", v["state_root"].as_str().unwrap_or("?"));
        println!("receipts    {} settled", v["settled_receipts"]);
        for val in v["validators"].as_array().into_iter().flatten() {
            println!("validator   {} {}", val["node_id"].as_str().unwrap_or("?"), val["api"].as_str().unwrap_or("?"));
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
            println!("{}", hex::encode(key.public_key()));
            return Ok(Outcome::Ok);
        }
    };
    let v: Value = Client::new(&cli.node).get(&format!("/v1/ledger/accounts/{address}")).await?;
    print_json(&v)?;
    Ok(Outcome::Ok)
}

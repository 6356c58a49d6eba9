//! `vouch receipt show [--wait]`.

use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Subcommand;
use vouch_api::Client;

use crate::{Cli, Outcome, print_json};

#[derive(Subcommand)]
pub enum ReceiptCommand {
    /// Fetch a receipt by id (printed as JSON).
    Show {
        /// Receipt id (hex).
        id: String,
        /// Wait until the receipt is settled on the ledger and carries its anchor.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
}

pub async fn run(cli: &Cli, cmd: &ReceiptCommand) -> anyhow::Result<Outcome> {
    match cmd {
        ReceiptCommand::Show { id, wait, timeout } => {
            let client = Client::new(&cli.node);
            let start = Instant::now();
            loop {
                let r = client.receipt(id).await?;
                if !wait || !r.get("anchor").is_none_or(|a| a.is_null()) {
                    print_json(&r)?;
                    break;
                }
                if start.elapsed() > Duration::from_secs(*timeout) {
                    bail!("receipt {id} not settled within {timeout} s");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    Ok(Outcome::Ok)
}

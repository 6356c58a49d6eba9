//! `vouch receipt show`.

use clap::Subcommand;
use vouch_api::Client;

use crate::{Cli, Outcome, print_json};

#[derive(Subcommand)]
pub enum ReceiptCommand {
    /// Fetch a receipt by id (printed as JSON).
    Show {
        /// Receipt id (hex).
        id: String,
    },
}

pub async fn run(cli: &Cli, cmd: &ReceiptCommand) -> anyhow::Result<Outcome> {
    match cmd {
        ReceiptCommand::Show { id } => {
            let r = Client::new(&cli.node).receipt(id).await?;
            print_json(&r)?;
        }
    }
    Ok(Outcome::Ok)
}

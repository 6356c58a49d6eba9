//! `vouch infer`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use vouch_api::{Client, InferRequest};
use vouch_codec::ReceiptJson;

use crate::{Cli, Outcome, print_json};

#[derive(Args)]
pub struct InferArgs {
    /// NAME, NAME@VERSION or ID.
    model: String,
    /// Input document (JSON): {"inputs": {name: tensor}} or {name: tensor}.
    #[arg(long)]
    input: PathBuf,
    /// Verification mode: signed, zk or quorum.
    #[arg(long, default_value = "signed")]
    mode: String,
    /// Executors in quorum mode (assigned by the ledger, stake-weighted).
    #[arg(long)]
    quorum: Option<u8>,
    /// Also write the receipt here.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

pub async fn run(cli: &Cli, a: &InferArgs) -> anyhow::Result<Outcome> {
    let text = std::fs::read_to_string(&a.input).with_context(|| format!("reading {}", a.input.display()))?;
    let inputs: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", a.input.display()))?;
    // Proving takes a moment on big models: show that something is happening (people only, not pipes).
    let spinner = if a.mode == "zk" && !cli.json && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let s = indicatif::ProgressBar::new_spinner().with_message("proving on the node...");
        s.enable_steady_tick(std::time::Duration::from_millis(100));
        s
    } else {
        indicatif::ProgressBar::hidden()
    };
    let receipt = Client::new(&cli.node)
        .infer(&InferRequest { model: a.model.clone(), inputs, mode: a.mode.clone(), quorum: a.quorum })
        .await;
    spinner.finish_and_clear();
    let receipt = receipt?;
    if let Some(out) = &a.output {
        std::fs::write(out, serde_json::to_string_pretty(&receipt)? + "\n")
            .with_context(|| format!("writing {}", out.display()))?;
    }
    if cli.json {
        print_json(&receipt)?;
    } else {
        let r: ReceiptJson = serde_json::from_value(receipt).context("the node sent a malformed receipt")?;
        for (name, t) in &r.outputs {
            println!("{name}: {} {:?} {}", t.dtype, t.shape, t.data);
        }
        eprintln!("receipt {}", r.id);
    }
    Ok(Outcome::Ok)
}

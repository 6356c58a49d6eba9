//! `vouch verify`: offline, from the receipt file alone (and the model file, if given).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::{Cli, Outcome, print_json};

#[derive(Args)]
pub struct VerifyArgs {
    /// Receipt JSON file.
    receipt: PathBuf,
    /// The model file: also check that its bytes are the receipt's model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// A chain spec (genesis.json): also check the receipt's ledger anchor against its validator set, offline.
    #[arg(long)]
    genesis: Option<PathBuf>,
    /// Also check the anchor online: against the chain spec served by `--node`, and that node's finalized block at
    /// the anchor's height must have the anchored hash.
    #[arg(long, conflicts_with = "genesis")]
    online: bool,
    /// With `--genesis` on a chain with epochs: the epoch links (`vouch ledger epochs > FILE`) that prove the
    /// validator sets after the genesis one, for anchors certified in a later epoch. Each link is checked against the
    /// set before it, from the genesis set.
    #[arg(long, requires = "genesis", value_name = "FILE")]
    epochs: Option<PathBuf>,
    /// A private-input receipt: also check that this input document, with `--salt`, opens its input commitment.
    #[arg(long, requires = "salt")]
    input: Option<PathBuf>,
    /// The salt `vouch infer --private-input` printed.
    #[arg(long, requires = "input")]
    salt: Option<String>,
    /// A language-model answer as the client received it (an OpenAI chat or completion response JSON, e.g. from
    /// `vouch chat --response`): also check, with `--model FILE.gguf`'s tokenizer, that its text is exactly what the
    /// receipt's output tokens say.
    #[arg(long, requires = "model")]
    response: Option<PathBuf>,
    /// A `tee` receipt: the launch measurement(s) its attestation must have (hex; repeatable). Without one, a policy
    /// file's or (with `--genesis`) the chain's allow-list applies; with none, any measurement is accepted and
    /// printed.
    #[arg(long = "tee-measurement", value_name = "HEX")]
    tee_measurement: Vec<String>,
    /// A TEE verification policy (TOML or JSON: accepted_tcb, measurements, max_age_s, allow_simulated,
    /// simulated_roots, snp_min_tcb).
    #[arg(long, value_name = "FILE")]
    tee_policy: Option<PathBuf>,
    /// Accept simulated TEE evidence (testing the plumbing only: it proves nothing about confidential hardware).
    #[arg(long)]
    allow_simulated_tee: bool,
}

impl VerifyArgs {
    /// The library request: the receipt's text as read, the files by path (each read when its check needs it).
    fn request(&self, node: &str, receipt: String) -> vouch_verify::Request {
        vouch_verify::Request {
            receipt,
            model: self.model.clone(),
            genesis: self.genesis.clone(),
            online: self.online.then(|| node.to_owned()),
            epochs: self.epochs.clone().map(vouch_verify::Doc::File),
            input: self.input.clone().map(vouch_verify::Doc::File),
            salt: self.salt.clone(),
            response: self.response.clone().map(vouch_verify::Doc::File),
            tee_measurements: self.tee_measurement.clone(),
            tee_policy: self.tee_policy.clone(),
            allow_simulated_tee: self.allow_simulated_tee,
        }
    }
}

/// Verifies and prints the report (`vouch_verify` holds the checks and the wording).
pub async fn run(cli: &Cli, a: &VerifyArgs) -> anyhow::Result<Outcome> {
    let text = std::fs::read_to_string(&a.receipt).with_context(|| format!("reading {}", a.receipt.display()))?;
    let report = vouch_verify::verify(&a.request(&cli.node, text)).await?;
    if cli.json {
        print_json(&report.to_json())?;
    } else {
        for line in report.lines() {
            crate::out!("{line}");
        }
    }
    Ok(if report.ok() { Outcome::Ok } else { Outcome::Invalid })
}

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
    /// Executors in quorum mode (assigned by the ledger, stake-weighted; default 3).
    #[arg(long)]
    quorum: Option<u8>,
    /// Quorum mode: the account key file that signs the job and pays its fees (`vouch account new FILE` makes one;
    /// a devnet's funded key is DIR/dev-account.key). Default: $VOUCH_ACCOUNT.
    #[arg(long, env = "VOUCH_ACCOUNT")]
    account: Option<PathBuf>,
    /// Quorum mode: fee paid to each honest executor.
    #[arg(long, default_value_t = 10)]
    fee_per_executor: u64,
    /// Also write the receipt here.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// zk mode: keep the input private. The receipt carries a salted commitment to the input instead of the input,
    /// and the proof hides every activation. The salt is drawn here and printed; with the input file it opens the
    /// commitment later (`vouch verify RECEIPT --input FILE --salt HEX`).
    #[arg(long)]
    private_input: bool,
}

/// The requester's signed `SubmitJob` (hex). The entry node prepares it (model id, input digest, nonce, fee); this
/// checks that it is a quorum job from this account with the quorum and executor fee asked for and an ordinary fee,
/// then signs it.
pub(crate) async fn job_tx(
    client: &Client,
    key: &vouch_crypto::NodeKey,
    model: &str,
    doc: &serde_json::Value,
    quorum: u8,
    fee_per_executor: u64,
) -> anyhow::Result<String> {
    let from = key.public_key();
    let prepared = client
        .prepare_job(&vouch_api::PrepareJobRequest {
            model: model.to_owned(),
            inputs: doc.clone(),
            quorum,
            fee_per_executor,
            from: hex::encode(from),
        })
        .await?;
    let genesis: serde_json::Value = client.get("/v1/ledger/genesis").await?;
    let min_fee = genesis["params"]["min_fee"].as_u64().unwrap_or(1);
    Ok(vouch_verify::sign::prepared_job(key, &prepared.tx, &prepared.id, quorum, fee_per_executor, min_fee)?)
}

pub async fn run(cli: &Cli, a: &InferArgs) -> anyhow::Result<Outcome> {
    let text = std::fs::read_to_string(&a.input).with_context(|| format!("reading {}", a.input.display()))?;
    let inputs: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", a.input.display()))?;
    let client = Client::new(&cli.node);
    let job_tx = if a.mode == "quorum" {
        let Some(key) = &a.account else {
            anyhow::bail!("quorum mode is paid by the requester: pass --account KEY_FILE (or set VOUCH_ACCOUNT)");
        };
        let key = vouch_crypto::NodeKey::load(key).with_context(|| format!("loading {}", key.display()))?;
        Some(job_tx(&client, &key, &a.model, &inputs, a.quorum.unwrap_or(3), a.fee_per_executor).await?)
    } else {
        None
    };
    if a.private_input && a.mode != "zk" {
        anyhow::bail!("--private-input is for --mode zk");
    }
    let salt = a.private_input.then(vouch_zk::private::Salt::random);
    let x = if a.private_input { Some(vouch_verify::single_f32_input(&inputs)?) } else { None };
    let private_input = salt.map(|s| vouch_api::PrivateInput { salt: s.to_hex() });
    let req =
        InferRequest { model: a.model.clone(), inputs, mode: a.mode.clone(), quorum: a.quorum, job_tx, private_input };
    let receipt = if a.mode == "zk" {
        // Proving takes a while on big models: the node streams one event per layer proof; people (not --json, not
        // pipes) see a bar.
        let bar = if !cli.json && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let b = indicatif::ProgressBar::new(0).with_style(
                indicatif::ProgressStyle::with_template("proving {bar:30} {pos}/{len} layer proofs {msg} {elapsed}")
                    .expect("valid template"),
            );
            b.enable_steady_tick(std::time::Duration::from_millis(200));
            b
        } else {
            indicatif::ProgressBar::hidden()
        };
        let r = client
            .infer_with_progress(&req, |ev| {
                bar.set_length(ev["total"].as_u64().unwrap_or(0));
                bar.set_position(ev["done"].as_u64().unwrap_or(0));
                bar.set_message(format!("(layer {}, {} rows)", ev["layer"], ev["rows"]));
            })
            .await;
        bar.finish_and_clear();
        r?
    } else {
        client.infer(&req).await?
    };
    if let (Some(salt), Some(x)) = (&salt, &x) {
        // The node must have proven this input: its commitment, with the salt drawn here, is the receipt's.
        let r: ReceiptJson = serde_json::from_value(receipt.clone()).context("the node sent a malformed receipt")?;
        let r = r.to_receipt().map_err(|e| anyhow::anyhow!("the node sent a malformed receipt: {e}"))?;
        vouch_receipt::check_private_opening(&r, x, salt)
            .map_err(|e| anyhow::anyhow!("the node's receipt is not about your input: {e}"))?;
        eprintln!(
            "private input: the receipt commits to your input; open it later with --input {} --salt {}",
            a.input.display(),
            salt.to_hex()
        );
    }
    if let Some(out) = &a.output {
        std::fs::write(out, serde_json::to_string_pretty(&receipt)? + "\n")
            .with_context(|| format!("writing {}", out.display()))?;
    }
    if cli.json {
        print_json(&receipt)?;
    } else {
        let r: ReceiptJson = serde_json::from_value(receipt).context("the node sent a malformed receipt")?;
        for (name, t) in &r.outputs {
            crate::out!("{name}: {} {:?} {}", t.dtype, t.shape, t.data.to_value());
        }
        eprintln!("receipt {}", r.id);
    }
    Ok(Outcome::Ok)
}

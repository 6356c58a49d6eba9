//! `vouch model push | ls | show | pull`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use vouch_api::{Client, ModelVersion, PushOptions};
use vouch_codec::ModelId;

use crate::{Cli, Outcome, print_json};

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Upload a model file; prints its id.
    Push(PushArgs),
    /// List repositories and versions.
    Ls,
    /// Show one version: NAME (latest), NAME@VERSION or ID.
    Show {
        /// NAME, NAME@VERSION or ID.
        reference: String,
    },
    /// Download a model's bytes by id (checked against the id).
    Pull {
        /// Model id.
        id: String,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
    },
}

#[derive(Args)]
pub struct PushArgs {
    /// The model file (ONNX).
    file: PathBuf,
    /// Repository name.
    #[arg(long)]
    name: String,
    /// MAJOR.MINOR (default: next minor after the latest, or 1.0).
    #[arg(long)]
    version: Option<String>,
    /// Free-text description.
    #[arg(long)]
    description: Option<String>,
    /// Also quantize the model for the zk path (needs --calibration).
    #[arg(long)]
    zk: bool,
    /// Calibration inputs for --zk: a JSON array of input documents (the format of an --input file).
    #[arg(long, requires = "zk")]
    calibration: Option<PathBuf>,
    /// Accept a quantization that changes the argmax on more than 1% of the calibration inputs.
    #[arg(long, requires = "zk")]
    force: bool,
    /// Keep the weights private (with --zk): this node never serves the file, the model runs only here, and its
    /// zk receipts (always with --private-input) prove the output against a commitment to the weights that
    /// reveals nothing about them.
    #[arg(long, requires = "zk")]
    private_weights: bool,
    /// A float model's quorum tolerance, ABS[,REL]: two executions agree when every output element is within
    /// ABS + REL * |reference| (default: exact, bit for bit). Recorded on the ledger with the model.
    #[arg(long, value_parser = parse_tolerance)]
    tolerance: Option<(f64, f64)>,
    /// The account key file that signs the push (a name belongs to the account whose push created it). Default:
    /// $VOUCH_ACCOUNT, else the local node's key ($VOUCH_HOME/node.key), else an unsigned push (taken only by a node
    /// configured with `unsigned_pushes`).
    #[arg(long, env = "VOUCH_ACCOUNT")]
    account: Option<PathBuf>,
    /// The node home whose key signs when no --account is given.
    #[arg(long, env = "VOUCH_HOME", hide = true)]
    home: Option<PathBuf>,
}

/// Signs a push of `file` as `name` (at `version`) with the account key `--account`, or the local node's key.
fn push_auth(a: &PushArgs) -> anyhow::Result<Option<vouch_api::PushAuth>> {
    let key_file = match &a.account {
        Some(k) => k.clone(),
        None => {
            let local = a.home.clone().unwrap_or_else(crate::default_home).join("node.key");
            if !local.exists() {
                return Ok(None);
            }
            local
        }
    };
    let key = vouch_crypto::NodeKey::load(&key_file).with_context(|| format!("loading {}", key_file.display()))?;
    // The id of the bytes, hashed while streaming the file (never all in memory).
    let id = vouch_verify::model_id_of_file(&a.file)?;
    let message = vouch_codec::push_message(&a.name, a.version.as_deref(), &id);
    let signature = key.sign(vouch_codec::domain::PUSH_SIGNATURE, &message);
    Ok(Some(vouch_api::PushAuth { account: hex::encode(key.public_key()), signature: hex::encode(signature) }))
}

fn parse_tolerance(s: &str) -> Result<(f64, f64), String> {
    let (abs, rel) = s.split_once(',').unwrap_or((s, "0"));
    let num = |v: &str| v.trim().parse::<f64>().map_err(|e| format!("{v:?}: {e}"));
    let t = (num(abs)?, num(rel)?);
    vouch_codec::AgreementRule::Tolerance { abs: t.0, rel: t.1 }.check()?;
    Ok(t)
}

fn print_version(v: &ModelVersion) {
    crate::out!("id          {}", v.id);
    crate::out!("name        {}@{}", v.name, v.version);
    crate::out!("size        {} bytes", v.size);
    crate::out!("format      {}", v.format);
    if !v.description.is_empty() {
        crate::out!("description {}", v.description);
    }
    for i in &v.inputs {
        crate::out!("input       {}", i.describe());
    }
    for o in &v.outputs {
        crate::out!("output      {}", o.describe());
    }
    if let Some(l) = &v.llm {
        crate::out!(
            "llm         {} ({}), {:.1}M parameters, context {} tokens",
            l.architecture,
            l.model_name.as_deref().unwrap_or("unnamed"),
            l.parameters as f64 / 1e6,
            l.context_length
        );
        crate::out!(
            "tensors     {}",
            l.tensor_types.iter().map(|(k, n)| format!("{k}x{n}")).collect::<Vec<_>>().join(" ")
        );
        crate::out!("tokenizer   {}, vocabulary of {} tokens", l.tokenizer, l.vocab_size);
        match &l.chat_template {
            Some(t) => crate::out!("template    chat template in the file ({} bytes)", t.len()),
            None => crate::out!("template    no chat template in the file: the architecture's turn format is used"),
        }
    }
    if let Some(z) = &v.zk {
        crate::out!(
            "zk          int{} weights, argmax agreement {:.2}% on {} calibration inputs, max abs error {:.3e}, mean abs error {:.3e}{}",
            z.weight_bits,
            z.argmax_agreement * 100.0,
            z.samples,
            z.max_abs_error,
            z.mean_abs_error,
            if z.forced { " (forced)" } else { "" }
        );
        crate::out!("zk commit   {}", z.commitment.as_deref().unwrap_or("none yet (the prover has not landed)"));
        // Receipts bind blake3 of the private commitment (body extension 0x0001): print that.
        match (&z.private_commitment, &z.private_unsupported) {
            (Some(c), _) => crate::out!(
                "zk private  --private-input {}, commitment blake3 {}",
                if z.hidden_weights { "required (private weights: the file is not served)" } else { "supported" },
                hex::decode(c).map(|b| blake3::hash(&b).to_hex().to_string()).unwrap_or_else(|_| c.clone())
            ),
            (None, Some(why)) => crate::out!("zk private  --private-input not supported: {why}"),
            (None, None) => {}
        }
        if let Some(w) = &z.weights_commitment {
            crate::out!("zk weights  private, committed as {w}");
        }
    }
    if let vouch_codec::AgreementRule::Tolerance { abs, rel } = v.agreement {
        crate::out!("agreement   within {abs:e} + {rel:e} x |reference| (quorum)");
    }
    if !v.ops.is_empty() {
        crate::out!("ops         {}", v.ops.iter().map(|(k, n)| format!("{k}x{n}")).collect::<Vec<_>>().join(" "));
    }
}

pub async fn run(cli: &Cli, cmd: &ModelCommand) -> anyhow::Result<Outcome> {
    let client = Client::new(&cli.node);
    match cmd {
        ModelCommand::Push(a) => {
            let len = std::fs::metadata(&a.file).map(|m| m.len()).unwrap_or(0);
            // Progress for big uploads, on stderr, only for people (not --json, not pipes).
            let bar = if !cli.json && len > (8 << 20) && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                let b = ProgressBar::new(len);
                b.set_style(
                    ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}")
                        .expect("valid template"),
                );
                b
            } else {
                ProgressBar::hidden()
            };
            let zk_calibration = match (&a.zk, &a.calibration) {
                (false, None) => None,
                (true, Some(path)) => {
                    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                    let docs: serde_json::Value =
                        serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))?;
                    Some(client.upload_calibration(&docs).await?.id)
                }
                (true, None) => bail!("--zk needs --calibration CALIB.json (a JSON array of input documents)"),
                (false, Some(_)) => bail!("--calibration is only used with --zk"),
            };
            let opts = PushOptions {
                version: a.version.clone(),
                description: a.description.clone(),
                zk_calibration,
                force: a.force,
                private_weights: a.private_weights,
                tolerance: a.tolerance,
                auth: push_auth(a)?,
            };
            let b = bar.clone();
            let v = client.push(&a.file, &a.name, &opts, move |n| b.set_position(n)).await?;
            bar.finish_and_clear();
            if cli.json { print_json(&v)? } else { crate::out!("{}", v.id) }
        }
        ModelCommand::Ls => {
            let repos = client.list().await?;
            if cli.json {
                print_json(&repos)?;
            } else {
                for r in &repos {
                    for v in &r.versions {
                        crate::out!("{:<24} {:<8} {:>12}  {}", r.name, v.version, v.size, v.id);
                    }
                }
            }
        }
        ModelCommand::Show { reference } => {
            let v = client.show(reference).await?;
            if cli.json { print_json(&v)? } else { print_version(&v) }
        }
        ModelCommand::Pull { id, output } => {
            let id: ModelId = id.parse()?;
            let n = client.pull(id, output).await?;
            if cli.json {
                print_json(&serde_json::json!({"id": id, "size": n, "path": output}))?;
            } else {
                crate::out!("{n} bytes -> {} (hash checked)", output.display());
            }
        }
    }
    Ok(Outcome::Ok)
}

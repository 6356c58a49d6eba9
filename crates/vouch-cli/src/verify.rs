//! `vouch verify`: offline, from the receipt file alone (and the model file, if given).

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use vouch_codec::ModelId;

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

/// The TEE policy of this verification: the policy file (or the default), the chain's allow-lists where the file
/// sets none, the measurements given on the command line, and whether simulated evidence is accepted.
fn tee_policy(a: &VerifyArgs, spec: Option<&vouch_chain::spec::ChainSpec>) -> anyhow::Result<vouch_tee::Policy> {
    let mut p = match &a.tee_policy {
        None => vouch_tee::Policy::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let parsed = if text.trim_start().starts_with('{') {
                serde_json::from_str(&text).map_err(anyhow::Error::from)
            } else {
                toml::from_str(&text).map_err(anyhow::Error::from)
            };
            parsed.with_context(|| format!("{} is not a TEE policy", path.display()))?
        }
    };
    if let Some(spec) = spec {
        let chain = &spec.params.tee;
        if p.measurements.is_empty() {
            p.measurements = chain.measurements.clone();
        }
        if a.tee_policy.is_none() {
            p.accepted_tcb = chain.accepted_tcb.clone();
            p.max_age_s = chain.attestation_ttl_s;
        }
        if p.simulated_roots.is_empty() {
            p.simulated_roots = chain.simulated_roots.clone();
        }
    }
    if !a.tee_measurement.is_empty() {
        p.measurements = a.tee_measurement.iter().map(|m| m.to_ascii_lowercase()).collect();
    }
    p.allow_simulated |= a.allow_simulated_tee;
    Ok(p)
}

/// Checks that a response's text, finish reason and token counts are the receipt's: the tokens detokenized with the
/// model's own vocabulary, cut at the request's stop strings. Returns the number of completion tokens.
fn check_response(
    receipt: &vouch_codec::Receipt,
    model: &std::path::Path,
    response: &serde_json::Value,
) -> anyhow::Result<Result<usize, String>> {
    use vouch_llm::LlmEngine;
    let (tokens, finish) = match vouch_llm::request::from_outputs(&receipt.outputs) {
        Ok(t) => t,
        Err(e) => return Ok(Err(format!("response: the receipt is not a completion ({e})"))),
    };
    let Some(inputs) = &receipt.inputs else {
        return Ok(Err("response: the receipt does not carry its request".into()));
    };
    let request = match vouch_llm::request::Completion::from_inputs(inputs) {
        Ok(r) => r,
        Err(e) => return Ok(Err(format!("response: {e}"))),
    };
    let vocab =
        vouch_llm::LlamaEngine::new().load_vocab(model).map_err(|e| anyhow::anyhow!("{}: {e}", model.display()))?;
    let mut pieces = Vec::with_capacity(tokens.len());
    for &t in &tokens {
        match vocab.piece(t) {
            Ok(_) if vocab.is_end(t) => {}
            Ok(p) => pieces.push(p),
            Err(e) => return Ok(Err(format!("response: output {e}"))),
        }
    }
    let text = vouch_llm::text::render(pieces.iter().map(Vec::as_slice), &request.params.stop);
    let choice = &response["choices"][0];
    let Some(said) = choice["message"]["content"].as_str().or_else(|| choice["text"].as_str()) else {
        return Ok(Err("response: no choices[0].message.content or choices[0].text".into()));
    };
    if said != text {
        let at = said.bytes().zip(text.bytes()).take_while(|(a, b)| a == b).count();
        return Ok(Err(format!(
            "response: its text differs from the receipt's tokens at byte {at}: the response has {:?}, the tokens say {:?}",
            said.get(at..).map(|s| s.chars().take(24).collect::<String>()).unwrap_or_default(),
            text.get(at..).map(|s| s.chars().take(24).collect::<String>()).unwrap_or_default(),
        )));
    }
    if let Some(f) = choice["finish_reason"].as_str()
        && f != finish.name()
    {
        return Ok(Err(format!("response: finish_reason {f:?}, the receipt says {:?}", finish.name())));
    }
    for (field, n) in [("completion_tokens", tokens.len()), ("prompt_tokens", request.prompt.len())] {
        if let Some(u) = response["usage"][field].as_u64()
            && u != n as u64
        {
            return Ok(Err(format!("response: usage.{field} is {u}, the receipt has {n}")));
        }
    }
    if let Some(id) = response["vouch"]["receipt_id"].as_str()
        && id != receipt.id().to_hex()
    {
        return Ok(Err(format!("response: it names receipt {id}, not this one")));
    }
    Ok(Ok(tokens.len()))
}

/// Epoch links as `GET /v1/ledger/epochs` serves them (`{"links": [hex, ...]}`).
fn parse_links(v: &serde_json::Value) -> anyhow::Result<Vec<vouch_chain::epoch::EpochLink>> {
    use vouch_codec::Canonical as _;
    let links = v["links"].as_array().context("an epochs document has a \"links\" array")?;
    links
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let bytes = hex::decode(l.as_str().unwrap_or_default()).with_context(|| format!("link {i}: not hex"))?;
            vouch_chain::epoch::EpochLink::from_canonical(&bytes).map_err(|e| anyhow::anyhow!("link {i}: {e}"))
        })
        .collect()
}

/// Where an anchor was checked: its height, and the epoch whose validator set certified it.
#[derive(Clone, Copy)]
struct Anchored {
    height: u64,
    epoch: u64,
}

/// Checks the anchor of a (signature-valid) receipt against a chain spec and the epoch links after its genesis set.
fn check_anchor(
    text: &str,
    spec: &vouch_chain::spec::ChainSpec,
    links: &[vouch_chain::epoch::EpochLink],
) -> anyhow::Result<Result<Anchored, String>> {
    let genesis = spec.genesis().map_err(anyhow::Error::msg)?;
    let chain_id = genesis.chain_id();
    let sets = match genesis.params.validators.epochs() {
        true => {
            match vouch_chain::epoch::ValidatorSets::from_links(&genesis.params.validators, &genesis.validators, links)
            {
                Ok(s) => s,
                Err(e) => return Ok(Err(format!("epoch links: {e}"))),
            }
        }
        false => vouch_chain::epoch::ValidatorSets::fixed(&spec.validator_keys().map_err(anyhow::Error::msg)?),
    };
    let json: vouch_codec::ReceiptJson = serde_json::from_str(text)?;
    let receipt = json.to_receipt().map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(anchor) = &receipt.anchor else {
        return Ok(
            Err("the receipt has no ledger anchor (not settled yet: try `vouch receipt show ID --wait`)".into()),
        );
    };
    // Verified anchors hold at least one 80-byte header: the certified block is the last.
    let certified = || anchor.height + (anchor.headers.len() / 80).saturating_sub(1) as u64;
    Ok(vouch_chain::anchor::verify_with_sets(anchor, &receipt.body, &chain_id, &sets)
        .map(|_| Anchored { height: anchor.height, epoch: sets.epoch_of(certified()) })
        .map_err(|e| format!("anchor: {e}")))
}

/// For an anchor whose settling transaction is a batch: the receipt's leaf index and the batch's size.
fn batch_place(text: &str) -> Option<(u32, u32)> {
    let receipt = serde_json::from_str::<vouch_codec::ReceiptJson>(text).ok()?.to_receipt().ok()?;
    let anchor = receipt.anchor?;
    match vouch_codec::tx::SignedTx::from_bytes(&anchor.tx).ok()?.tx.kind {
        vouch_codec::tx::TxKind::SettleBatch { count, .. } => Some((anchor.batch?.index, count)),
        _ => None,
    }
}

fn hash_file(path: &PathBuf) -> anyhow::Result<ModelId> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(ModelId::from_blake3(*h.finalize().as_bytes()))
}

/// The online check: the node's chain spec, and its block at the anchor's height.
async fn check_online(cli: &Cli, text: &str) -> anyhow::Result<Result<Anchored, String>> {
    let client = vouch_api::Client::new(&cli.node);
    let spec: vouch_chain::spec::ChainSpec = client.get("/v1/ledger/genesis").await?;
    let links = match spec.params.validators.epochs() {
        true => parse_links(&crate::ledger::all_epoch_links(&client).await?)?,
        false => vec![],
    };
    let anchored = match check_anchor(text, &spec, &links)? {
        Ok(a) => a,
        Err(e) => return Ok(Err(e)),
    };
    let height = anchored.height;
    let json: vouch_codec::ReceiptJson = serde_json::from_str(text)?;
    let anchor = json.to_receipt().map_err(|e| anyhow::anyhow!("{e}"))?.anchor.expect("checked above");
    let block: serde_json::Value = client.get(&format!("/v1/ledger/blocks/{height}")).await?;
    if block["hash"].as_str() != Some(hex::encode(anchor.block_hash).as_str()) {
        return Ok(Err(format!("anchor: node {} has another block at height {height}", cli.node)));
    }
    Ok(Ok(anchored))
}

pub async fn run(cli: &Cli, a: &VerifyArgs) -> anyhow::Result<Outcome> {
    let text = std::fs::read_to_string(&a.receipt).with_context(|| format!("reading {}", a.receipt.display()))?;
    let model = a.model.as_ref().map(hash_file).transpose()?;
    let spec =
        a.genesis.as_ref().map(|g| vouch_chain::spec::ChainSpec::load(g).map_err(anyhow::Error::msg)).transpose()?;
    let opts = vouch_receipt::VerifyOptions {
        model_bytes_id: model,
        tee_policy: Some(tee_policy(a, spec.as_ref())?),
        ..Default::default()
    };
    let mut verified = vouch_receipt::verify_json_with(&text, opts).map_err(|e| e.to_string());
    if let (Ok(_), Some(input), Some(salt)) = (&verified, &a.input, &a.salt) {
        let doc: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(input).with_context(|| format!("reading {}", input.display()))?,
        )?;
        let x = crate::infer::single_f32_input(&doc)?;
        let salt = vouch_zk::private::Salt::from_hex(salt).map_err(|e| anyhow::anyhow!("--salt: {e}"))?;
        let json: vouch_codec::ReceiptJson = serde_json::from_str(&text)?;
        let receipt = json.to_receipt().map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Err(e) = vouch_receipt::check_private_opening(&receipt, &x, &salt) {
            verified = Err(e.to_string());
        }
    }
    let mut response_tokens = None;
    if let (Ok(_), Some(path)) = (&verified, &a.response) {
        let response: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{} is not JSON", path.display()))?;
        let json: vouch_codec::ReceiptJson = serde_json::from_str(&text)?;
        let receipt = json.to_receipt().map_err(|e| anyhow::anyhow!("{e}"))?;
        let model = a.model.as_ref().expect("clap: --response requires --model");
        match check_response(&receipt, model, &response)? {
            Ok(n) => response_tokens = Some(n),
            Err(e) => verified = Err(e),
        }
    }
    let links = match &a.epochs {
        Some(path) => parse_links(&serde_json::from_str(
            &std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        )?)?,
        None => vec![],
    };
    let anchored = match (&verified, &spec) {
        (Ok(_), Some(spec)) => Some(check_anchor(&text, spec, &links)?),
        (Ok(_), None) if a.online => Some(check_online(cli, &text).await?),
        _ => None,
    };
    let verified = match (verified, &anchored) {
        (Ok(_), Some(Err(e))) => Err(e.clone()),
        (v, _) => v,
    };
    match verified {
        Ok(v) => {
            if cli.json {
                print_json(&serde_json::json!({
                    "valid": true, "id": v.id.to_hex(), "model": v.model, "mode": v.mode.name(),
                    "signers": v.signers.iter().map(hex::encode).collect::<Vec<_>>(), "model_checked": v.model_checked,
                    "zk_layers": v.zk_layers, "anchor_height": anchored.as_ref().and_then(|a| a.as_ref().ok()).map(|a| a.height),
                    "anchor_epoch": anchored.as_ref().and_then(|a| a.as_ref().ok()).map(|a| a.epoch),
                    "anchor_batch": anchored.as_ref().and_then(|a| a.as_ref().ok()).and(batch_place(&text))
                        .map(|(index, count)| serde_json::json!({"index": index, "count": count})),
                    "private_input": v.private_input, "input_opened": a.input.is_some(),
                    "response_tokens": response_tokens,
                    "tee": v.tee.as_ref().map(|t| serde_json::json!({
                        "platform": t.platform.name(), "measurement": hex::encode(&t.measurement),
                        "tcb_status": t.tcb_status, "expires_at_s": t.expires_at_s, "simulated": t.simulated,
                    })),
                }))?;
            } else {
                crate::out!("valid: receipt {}", v.id);
                crate::out!("  model   {}{}", v.model, if v.model_checked { " (file bytes checked)" } else { "" });
                crate::out!("  mode    {}", v.mode.name());
                for s in &v.signers {
                    crate::out!("  signer  {}", hex::encode(s));
                }
                if let Some(n) = response_tokens {
                    crate::out!(
                        "  text    the response is exactly the receipt's {n} output tokens, detokenized by the model"
                    );
                }
                if let Some(Ok(Anchored { height: h, epoch })) = anchored {
                    let batch = match batch_place(&text) {
                        Some((i, n)) => format!(" in a batch of {n} (leaf {i}, Merkle path checked)"),
                        None => String::new(),
                    };
                    let set = match epoch {
                        0 => "the genesis validators".to_owned(),
                        e => format!("the validators of epoch {e} (followed from the genesis set)"),
                    };
                    crate::out!(
                        "  anchor  settled at height {h}{batch}, finalization certificate verified against {set}"
                    );
                }
                if let Some(t) = &v.tee {
                    crate::out!(
                        "  tee     {}{} attestation binds the signer; measurement {}; TCB {}; valid until {} (Unix s)",
                        t.platform,
                        if t.simulated { " (SIMULATED, not a TEE)" } else { "" },
                        hex::encode(&t.measurement),
                        t.tcb_status,
                        t.expires_at_s
                    );
                }
                match (&v.private_input, v.zk_layers) {
                    (Some(c), _) => {
                        crate::out!("  zk      private-input proof verified ({})", vouch_zk_private_system());
                        crate::out!(
                            "  input   private, committed as {c}{}",
                            if a.input.is_some() { " (opened with the input and salt given)" } else { "" }
                        );
                    }
                    (None, Some(n)) => {
                        crate::out!("  zk      proof verified ({n} layer STARKs, {})", vouch_zk_system())
                    }
                    (None, None) => {}
                }
            }
            Ok(Outcome::Ok)
        }
        Err(e) => {
            if cli.json {
                print_json(&serde_json::json!({"valid": false, "reason": e.to_string()}))?;
            } else {
                crate::out!("invalid: {e}");
            }
            Ok(Outcome::Invalid)
        }
    }
}

fn vouch_zk_private_system() -> &'static str {
    "one Plonky3 batch STARK over Goldilocks with a hiding PCS, FRI blowup 4, 54 queries, 8 grinding bits"
}

fn vouch_zk_system() -> &'static str {
    "Plonky3 uni-STARK over Goldilocks, FRI blowup 4, 54 queries, 8 grinding bits"
}

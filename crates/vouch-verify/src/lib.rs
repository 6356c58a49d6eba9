//! What `vouch verify` checks and prints, as a library.
//!
//! The CLI and the Python package (`vouch-py`) both call [`verify`], so a receipt gets the same verdict, the same
//! reason and the same printed report from either. The checks run in a fixed order, which is part of the behaviour
//! (it decides "invalid" against "error", and which reason is reported):
//! 1. the model file is hashed (a missing file is an error, whatever the receipt);
//! 2. the chain spec is loaded; 3. the TEE policy is built;
//! 4. the receipt is verified (signatures, evidence, zk proof, attestation);
//! 5. only if valid: the private input is opened with the salt; 6. only if valid: an LLM response is checked;
//! 7. the epoch links are parsed; 8. only if valid: the ledger anchor, offline or online;
//! 9. an anchor's failure is the verdict's reason.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use vouch_codec::{ModelId, Receipt, ReceiptJson};

/// The proof system of private-input receipts, as reports name it.
pub const ZK_PRIVATE_SYSTEM: &str = vouch_zk::private::SYSTEM_DESCRIPTION;
/// The proof system of public zk receipts, as reports name it.
pub const ZK_SYSTEM: &str = vouch_zk::SYSTEM_DESCRIPTION;

/// Something that is not a verdict on the receipt: a file that cannot be read, an option that makes no sense, a node
/// that cannot be asked. The CLI exits 2 on these; a verdict (valid or not) is a [`Report`].
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A file could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A document is not JSON.
    #[error("{what} is not JSON: {reason}")]
    NotJson {
        /// The document (a path, or what it was given as).
        what: String,
        /// The parser's message.
        reason: String,
    },
    /// The chain spec could not be loaded.
    #[error("{0}")]
    Spec(String),
    /// The TEE policy file could not be parsed.
    #[error("{} is not a TEE policy: {reason}", path.display())]
    Policy {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// The epoch links document is malformed.
    #[error("{0}")]
    Links(String),
    /// The salt is malformed.
    #[error("--salt: {0}")]
    Salt(String),
    /// The input document is not one f32 tensor.
    #[error("{0}")]
    Input(String),
    /// The receipt is not even a receipt document (reported here only after it was found valid, which cannot
    /// happen; kept so that no path panics).
    #[error("{0}")]
    Receipt(String),
    /// The model file cannot be read as a language model.
    #[error("{}: {reason}", path.display())]
    Model {
        /// The file.
        path: PathBuf,
        /// The loader's message.
        reason: String,
    },
    /// A response check was asked of a build without the LLM engine.
    #[error("this build cannot check LLM responses (it was built without the `llm` feature)")]
    NoLlm,
    /// A response check needs the model file.
    #[error("checking a response needs the model file (its tokenizer)")]
    ResponseNeedsModel,
    /// The node asked for the online anchor check failed.
    #[error(transparent)]
    Online(Box<vouch_api::ClientError>),
}

impl From<vouch_api::ClientError> for VerifyError {
    fn from(e: vouch_api::ClientError) -> Self {
        VerifyError::Online(Box::new(e))
    }
}

/// A JSON document given as a file or as a value.
#[derive(Clone, Debug)]
pub enum Doc {
    /// Read and parsed when the check needs it.
    File(PathBuf),
    /// Already parsed.
    Value(Value),
}

impl Doc {
    fn load(&self) -> Result<Value, VerifyError> {
        match self {
            Doc::Value(v) => Ok(v.clone()),
            Doc::File(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| VerifyError::Read { path: path.clone(), source })?;
                serde_json::from_str(&text)
                    .map_err(|e| VerifyError::NotJson { what: path.display().to_string(), reason: e.to_string() })
            }
        }
    }
}

/// What to verify, and against what: the flags of `vouch verify`.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// The receipt's JSON text, exactly as received (re-serialising it could hide a tampered `id`).
    pub receipt: String,
    /// The model file: also check that its bytes are the receipt's model.
    pub model: Option<PathBuf>,
    /// A chain spec (genesis.json): check the ledger anchor against its validator set, offline.
    pub genesis: Option<PathBuf>,
    /// A node URL: check the anchor against its chain spec and its finalized block (conflicts with `genesis`).
    pub online: Option<String>,
    /// The epoch links after the genesis validator set (`{"links": [hex, ...]}`).
    pub epochs: Option<Doc>,
    /// A private-input receipt's input document, opened with `salt`.
    pub input: Option<Doc>,
    /// The salt (hex) that opens the input commitment.
    pub salt: Option<String>,
    /// An LLM answer (an OpenAI chat or completion response) whose text must be the receipt's tokens.
    pub response: Option<Doc>,
    /// Launch measurements (hex) a `tee` receipt's attestation must have.
    pub tee_measurements: Vec<String>,
    /// A TEE policy file (TOML or JSON).
    pub tee_policy: Option<PathBuf>,
    /// Accept simulated TEE evidence.
    pub allow_simulated_tee: bool,
}

/// Where an anchor was checked: its height, and the epoch whose validator set certified it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anchored {
    /// The block that settled the receipt.
    pub height: u64,
    /// The epoch whose validators certified it (0: the genesis set).
    pub epoch: u64,
    /// For a batch settlement: the receipt's leaf index and the batch's size.
    pub batch: Option<(u32, u32)>,
}

/// The verdict on one receipt, with everything the CLI prints about it.
#[derive(Debug)]
pub struct Report {
    /// The receipt's checks, or the reason it failed (the first failed check, anchor included).
    pub verdict: Result<vouch_receipt::Verified, String>,
    /// The anchor, when one was checked and held.
    pub anchor: Option<Anchored>,
    /// The number of completion tokens of a checked LLM response.
    pub response_tokens: Option<usize>,
    /// Whether an input document was given to open a private input.
    pub input_opened: bool,
}

impl Report {
    /// Whether the receipt verified.
    pub fn ok(&self) -> bool {
        self.verdict.is_ok()
    }

    /// The reason the receipt failed, if it did.
    pub fn reason(&self) -> Option<&str> {
        self.verdict.as_ref().err().map(String::as_str)
    }

    /// The report as `vouch --json verify` prints it.
    pub fn to_json(&self) -> Value {
        let v = match &self.verdict {
            Ok(v) => v,
            Err(e) => return serde_json::json!({"valid": false, "reason": e}),
        };
        serde_json::json!({
            "valid": true, "id": v.id.to_hex(), "model": v.model, "mode": v.mode.name(),
            "signers": v.signers.iter().map(hex::encode).collect::<Vec<_>>(), "model_checked": v.model_checked,
            "zk_layers": v.zk_layers, "anchor_height": self.anchor.map(|a| a.height),
            "anchor_epoch": self.anchor.map(|a| a.epoch),
            "anchor_batch": self.anchor.and_then(|a| a.batch)
                .map(|(index, count)| serde_json::json!({"index": index, "count": count})),
            "private_input": v.private_input, "input_opened": self.input_opened,
            "weights_commitment": v.weights_commitment,
            "response_tokens": self.response_tokens,
            "tee": v.tee.as_ref().map(|t| serde_json::json!({
                "platform": t.platform.name(), "measurement": hex::encode(&t.measurement),
                "tcb_status": t.tcb_status, "expires_at_s": t.expires_at_s, "simulated": t.simulated,
            })),
        })
    }

    /// The report as `vouch verify` prints it, one line per entry.
    pub fn lines(&self) -> Vec<String> {
        let v = match &self.verdict {
            Ok(v) => v,
            Err(e) => return vec![format!("invalid: {e}")],
        };
        let mut out = vec![
            format!("valid: receipt {}", v.id),
            format!("  model   {}{}", v.model, if v.model_checked { " (file bytes checked)" } else { "" }),
            format!("  mode    {}", v.mode.name()),
        ];
        out.extend(v.signers.iter().map(|s| format!("  signer  {}", hex::encode(s))));
        if let Some(n) = self.response_tokens {
            out.push(format!(
                "  text    the response is exactly the receipt's {n} output tokens, detokenized by the model"
            ));
        }
        if let Some(Anchored { height: h, epoch, batch }) = self.anchor {
            let batch = match batch {
                Some((i, n)) => format!(" in a batch of {n} (leaf {i}, Merkle path checked)"),
                None => String::new(),
            };
            let set = match epoch {
                0 => "the genesis validators".to_owned(),
                e => format!("the validators of epoch {e} (followed from the genesis set)"),
            };
            out.push(format!(
                "  anchor  settled at height {h}{batch}, finalization certificate verified against {set}"
            ));
        }
        if let Some(t) = &v.tee {
            out.push(format!(
                "  tee     {}{} attestation binds the signer; measurement {}; TCB {}; valid until {} (Unix s)",
                t.platform,
                if t.simulated { " (SIMULATED, not a TEE)" } else { "" },
                hex::encode(&t.measurement),
                t.tcb_status,
                t.expires_at_s
            ));
        }
        match (&v.private_input, v.zk_layers) {
            (Some(c), _) => {
                out.push(format!("  zk      private-input proof verified ({ZK_PRIVATE_SYSTEM})"));
                out.push(format!(
                    "  input   private, committed as {c}{}",
                    if self.input_opened { " (opened with the input and salt given)" } else { "" }
                ));
                if let Some(w) = &v.weights_commitment {
                    out.push(format!("  weights private, committed as {w} (the model's zk identity)"));
                }
            }
            (None, Some(n)) => out.push(format!("  zk      proof verified ({n} layer STARKs, {ZK_SYSTEM})")),
            (None, None) => {}
        }
        out
    }
}

/// Verifies a receipt as `vouch verify` does. Async only for the online anchor check; without `online` it does no
/// I/O besides reading the files named in the request (see [`verify_offline`]).
pub async fn verify(req: &Request) -> Result<Report, VerifyError> {
    let (mut report, anchor_pending) = verify_local(req)?;
    if anchor_pending && let Some(node) = &req.online {
        settle(&mut report, check_online(node, &req.receipt).await?, &req.receipt);
    }
    Ok(report)
}

/// [`verify`] for a request without `online`, on the caller's thread.
pub fn verify_offline(req: &Request) -> Result<Report, VerifyError> {
    Ok(verify_local(req)?.0)
}

/// Every check but the online anchor; says whether the online check is still to run.
fn verify_local(req: &Request) -> Result<(Report, bool), VerifyError> {
    let text = &req.receipt;
    let model = req.model.as_deref().map(model_id_of_file).transpose()?;
    let spec = req
        .genesis
        .as_ref()
        .map(|g| vouch_chain::spec::ChainSpec::load(g).map_err(|e| VerifyError::Spec(e.to_string())))
        .transpose()?;
    let opts = vouch_receipt::VerifyOptions {
        model_bytes_id: model,
        tee_policy: Some(tee_policy(req, spec.as_ref())?),
        ..Default::default()
    };
    let mut verdict = vouch_receipt::verify_json_with(text, opts).map_err(|e| e.to_string());
    if let (Ok(_), Some(input), Some(salt)) = (&verdict, &req.input, &req.salt) {
        let x = single_f32_input(&input.load()?)?;
        let salt = vouch_zk::private::Salt::from_hex(salt).map_err(|e| VerifyError::Salt(e.to_string()))?;
        if let Err(e) = vouch_receipt::check_private_opening(&parse_receipt(text)?, &x, &salt) {
            verdict = Err(e.to_string());
        }
    }
    let mut response_tokens = None;
    if let (Ok(_), Some(doc)) = (&verdict, &req.response) {
        let response = doc.load()?;
        let model = req.model.as_deref().ok_or(VerifyError::ResponseNeedsModel)?;
        match check_response(&parse_receipt(text)?, model, &response)? {
            Ok(n) => response_tokens = Some(n),
            Err(e) => verdict = Err(e),
        }
    }
    let links = match &req.epochs {
        Some(doc) => parse_links(&doc.load()?)?,
        None => vec![],
    };
    let valid = verdict.is_ok();
    let mut report = Report { verdict, anchor: None, response_tokens, input_opened: req.input.is_some() };
    if valid && let Some(spec) = &spec {
        settle(&mut report, check_anchor(text, spec, &links)?, text);
    }
    Ok((report, valid && spec.is_none() && req.online.is_some()))
}

/// Records an anchor check in the report: its place, or its failure as the verdict.
fn settle(report: &mut Report, anchored: Result<(u64, u64), String>, text: &str) {
    match anchored {
        Ok((height, epoch)) => report.anchor = Some(Anchored { height, epoch, batch: batch_place(text) }),
        Err(e) => report.verdict = Err(e),
    }
}

fn parse_receipt(text: &str) -> Result<Receipt, VerifyError> {
    let json: ReceiptJson = serde_json::from_str(text).map_err(|e| VerifyError::Receipt(e.to_string()))?;
    json.to_receipt().map_err(|e| VerifyError::Receipt(e.to_string()))
}

/// The TEE policy of a verification: the policy file (or the default), the chain's allow-lists where the file sets
/// none, the measurements given, and whether simulated evidence is accepted.
fn tee_policy(req: &Request, spec: Option<&vouch_chain::spec::ChainSpec>) -> Result<vouch_tee::Policy, VerifyError> {
    let mut p = match &req.tee_policy {
        None => vouch_tee::Policy::default(),
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|source| VerifyError::Read { path: path.clone(), source })?;
            let parsed = if text.trim_start().starts_with('{') {
                serde_json::from_str(&text).map_err(|e| e.to_string())
            } else {
                toml::from_str(&text).map_err(|e| e.to_string())
            };
            parsed.map_err(|reason| VerifyError::Policy { path: path.clone(), reason })?
        }
    };
    if let Some(spec) = spec {
        let chain = &spec.params.tee;
        if p.measurements.is_empty() {
            p.measurements = chain.measurements.clone();
        }
        if req.tee_policy.is_none() {
            p.accepted_tcb = chain.accepted_tcb.clone();
            p.max_age_s = chain.attestation_ttl_s;
        }
        if p.simulated_roots.is_empty() {
            p.simulated_roots = chain.simulated_roots.clone();
        }
    }
    if !req.tee_measurements.is_empty() {
        p.measurements = req.tee_measurements.iter().map(|m| m.to_ascii_lowercase()).collect();
    }
    p.allow_simulated |= req.allow_simulated_tee;
    Ok(p)
}

/// The single f32 input of an input document (`{"inputs": {name: tensor}}` or `{name: tensor}`): what a
/// private-input proof is about.
pub fn single_f32_input(doc: &Value) -> Result<Vec<f32>, VerifyError> {
    let map = vouch_codec::tensor::parse_input_doc(doc, |_| Some(vouch_codec::DType::F32))
        .map_err(|(n, e)| VerifyError::Input(format!("input {n:?}: {e}")))?;
    let mut it = map.values();
    match (it.next().map(|t| t.data()), it.next()) {
        (Some(vouch_codec::TensorData::F32(v)), None) => Ok(v.clone()),
        _ => Err(VerifyError::Input("a private input is one f32 tensor".into())),
    }
}

/// The model id of a file: blake3 of its bytes, streamed (never all in memory).
pub fn model_id_of_file(path: &Path) -> Result<ModelId, VerifyError> {
    let read = |source| VerifyError::Read { path: path.to_owned(), source };
    let mut f = std::fs::File::open(path).map_err(read)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(read)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(ModelId::from_blake3(*h.finalize().as_bytes()))
}

#[cfg(not(feature = "llm"))]
fn check_response(_: &Receipt, _: &Path, _: &Value) -> Result<Result<usize, String>, VerifyError> {
    Err(VerifyError::NoLlm)
}

/// Checks that a response's text, finish reason and token counts are the receipt's: the tokens detokenized with the
/// model's own vocabulary, cut at the request's stop strings. Returns the number of completion tokens.
#[cfg(feature = "llm")]
fn check_response(receipt: &Receipt, model: &Path, response: &Value) -> Result<Result<usize, String>, VerifyError> {
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
    let vocab = vouch_llm::LlamaEngine::new()
        .load_vocab(model)
        .map_err(|e| VerifyError::Model { path: model.to_owned(), reason: e.to_string() })?;
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
pub fn parse_links(v: &Value) -> Result<Vec<vouch_chain::epoch::EpochLink>, VerifyError> {
    use vouch_codec::Canonical as _;
    let links =
        v["links"].as_array().ok_or_else(|| VerifyError::Links("an epochs document has a \"links\" array".into()))?;
    links
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let bytes = hex::decode(l.as_str().unwrap_or_default())
                .map_err(|_| VerifyError::Links(format!("link {i}: not hex")))?;
            vouch_chain::epoch::EpochLink::from_canonical(&bytes)
                .map_err(|e| VerifyError::Links(format!("link {i}: {e}")))
        })
        .collect()
}

/// Checks the anchor of a (signature-valid) receipt against a chain spec and the epoch links after its genesis set:
/// its height and certifying epoch, or the reason it fails.
fn check_anchor(
    text: &str,
    spec: &vouch_chain::spec::ChainSpec,
    links: &[vouch_chain::epoch::EpochLink],
) -> Result<Result<(u64, u64), String>, VerifyError> {
    let genesis = spec.genesis().map_err(|e| VerifyError::Spec(e.to_string()))?;
    let chain_id = genesis.chain_id();
    let sets = match genesis.params.validators.epochs() {
        true => {
            match vouch_chain::epoch::ValidatorSets::from_links(&genesis.params.validators, &genesis.validators, links)
            {
                Ok(s) => s,
                Err(e) => return Ok(Err(format!("epoch links: {e}"))),
            }
        }
        false => vouch_chain::epoch::ValidatorSets::fixed(
            &spec.validator_keys().map_err(|e| VerifyError::Spec(e.to_string()))?,
        ),
    };
    let receipt = parse_receipt(text)?;
    let Some(anchor) = &receipt.anchor else {
        return Ok(
            Err("the receipt has no ledger anchor (not settled yet: try `vouch receipt show ID --wait`)".into()),
        );
    };
    // Verified anchors hold at least one 80-byte header: the certified block is the last.
    let certified = || anchor.height + (anchor.headers.len() / 80).saturating_sub(1) as u64;
    Ok(vouch_chain::anchor::verify_with_sets(anchor, &receipt.body, &chain_id, &sets)
        .map(|_| (anchor.height, sets.epoch_of(certified())))
        .map_err(|e| format!("anchor: {e}")))
}

/// For an anchor whose settling transaction is a batch: the receipt's leaf index and the batch's size.
fn batch_place(text: &str) -> Option<(u32, u32)> {
    let receipt = parse_receipt(text).ok()?;
    let anchor = receipt.anchor?;
    match vouch_codec::tx::SignedTx::from_bytes(&anchor.tx).ok()?.tx.kind {
        vouch_codec::tx::TxKind::SettleBatch { count, .. } => Some((anchor.batch?.index, count)),
        _ => None,
    }
}

/// The online check: the node's chain spec, and its block at the anchor's height.
async fn check_online(node: &str, text: &str) -> Result<Result<(u64, u64), String>, VerifyError> {
    let client = vouch_api::Client::new(node);
    let spec: vouch_chain::spec::ChainSpec = client.get("/v1/ledger/genesis").await?;
    let links = match spec.params.validators.epochs() {
        true => parse_links(&client.epoch_links().await?)?,
        false => vec![],
    };
    let (height, epoch) = match check_anchor(text, &spec, &links)? {
        Ok(a) => a,
        Err(e) => return Ok(Err(e)),
    };
    let anchor = parse_receipt(text)?.anchor.ok_or_else(|| VerifyError::Receipt("the anchor vanished".into()))?;
    let block: Value = client.get(&format!("/v1/ledger/blocks/{height}")).await?;
    if block["hash"].as_str() != Some(hex::encode(anchor.block_hash).as_str()) {
        return Ok(Err(format!("anchor: node {node} has another block at height {height}")));
    }
    Ok(Ok((height, epoch)))
}

/// Signing on behalf of an account: what a client does besides verifying.
pub mod sign {
    use vouch_codec::tx::{SignedTx, Tx, TxKind};
    use vouch_crypto::NodeKey;

    /// Why a prepared job was not signed.
    #[derive(Debug, thiserror::Error)]
    pub enum JobError {
        /// The transaction is not hex or not a transaction.
        #[error("the node sent a malformed transaction")]
        Malformed,
        /// The node prepared something other than what was asked for.
        #[error("the node prepared a different job than asked for; not signing it: {0}")]
        Different(String),
    }

    /// Signs a transaction as its sender.
    pub fn tx(key: &NodeKey, tx: Tx) -> SignedTx {
        let signature = key.sign(vouch_codec::domain::TX_SIGNATURE, &tx.id().0);
        SignedTx { tx, signature }
    }

    /// Signs the `SubmitJob` an entry node prepared (hex, with its id) for this key's account, after checking that it
    /// is a quorum job from this account with the quorum and executor fee asked for and an ordinary fee (at most
    /// `min_fee`). Returns the signed transaction, hex.
    pub fn prepared_job(
        key: &NodeKey,
        tx_hex: &str,
        id: &str,
        quorum: u8,
        fee_per_executor: u64,
        min_fee: u64,
    ) -> Result<String, JobError> {
        let bytes = hex::decode(tx_hex).map_err(|_| JobError::Malformed)?;
        let tx = Tx::from_bytes(&bytes).map_err(|_| JobError::Malformed)?;
        let asked = matches!(tx.kind, TxKind::SubmitJob { mode: vouch_codec::Mode::Quorum, quorum: q, fee_per_executor: f, .. }
            if q == quorum && f == fee_per_executor);
        if tx.from != key.public_key() || !asked || tx.fee > min_fee || tx.id().to_hex() != id {
            return Err(JobError::Different(format!("{tx:?}")));
        }
        Ok(hex::encode(self::tx(key, tx).to_bytes()))
    }

    /// A node key file's consensus key: its public half, and its proof of possession for `account`.
    pub fn consensus_key(node_key: &NodeKey, account: &[u8; 32]) -> ([u8; 32], [u8; 64]) {
        let consensus = NodeKey::from_secret(node_key.derive_seed(vouch_chain::spec::CONSENSUS_KEY_CONTEXT));
        (consensus.public_key(), consensus.sign(vouch_codec::domain::VALIDATOR_BIND, account))
    }
}

//! Receipts: what was computed (model, input and output digests), how it may be checked (mode, agreement
//! rule), and the evidence that it was (signatures, proofs, quotes), plus the ledger anchor once settled.
//!
//! The **body** is what the receipt id commits to: `id = blake3_derive_key(VOUCH_RECEIPT_ID_V1, body)`.
//! Evidence and the anchor sit outside the body, so they can be added (more quorum signatures, a settlement
//! anchor) without changing the id, and every signature covers exactly the id. New evidence kinds and
//! anchor fields slot in as new tags; new body fields go into `extensions` (tag-ordered, the high bit of a
//! tag marks it critical: a verifier that does not know a critical extension must reject the receipt).
//!
//! Canonical receipt: `magic "VOUCHRCT"`, `format: u16`, `body` (length-prefixed), `outputs` (tensor map),
//! `inputs` (0 | 1 + tensor map), `evidence` (count, then `tag: u16` + length-prefixed payload each),
//! `anchor` (0 | 1 + length-prefixed anchor).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::canon::{Canonical, DecodeError, Reader, Writer};
use crate::digest::{Digest, domain};
use crate::model_id::ModelId;
use crate::tensor::{self, TensorJson, TensorMap};

/// The receipt format this build writes and reads.
pub const FORMAT_V1: u16 = 1;
/// Magic bytes of a canonical receipt.
pub const MAGIC: &[u8; 8] = b"VOUCHRCT";

/// How a receipt's result may be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Mode {
    /// The executing node signs.
    Signed = 1,
    /// K independently selected nodes re-execute and sign the same output digest.
    Quorum = 2,
    /// A succinct proof of the computation.
    Zk = 3,
    /// Executed in an attested confidential VM.
    Tee = 4,
}

impl Mode {
    /// From the encoded byte.
    pub fn from_u8(v: u8) -> Option<Self> {
        [Mode::Signed, Mode::Quorum, Mode::Zk, Mode::Tee].into_iter().find(|m| *m as u8 == v)
    }
    /// The name used in JSON and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Signed => "signed",
            Mode::Quorum => "quorum",
            Mode::Zk => "zk",
            Mode::Tee => "tee",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [Mode::Signed, Mode::Quorum, Mode::Zk, Mode::Tee]
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown mode {s:?} (expected signed, quorum, zk or tee)"))
    }
}

/// When two executions of the model agree (what a quorum compares). Equality is bitwise, like the canonical
/// encoding (so it is an equivalence even for NaN, which [`AgreementRule::check`] refuses anyway).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum AgreementRule {
    /// Bit-exact outputs (integer models, or one engine build).
    #[default]
    Exact,
    /// Every element within `abs + rel * |reference|`.
    Tolerance {
        /// Absolute tolerance.
        abs: f64,
        /// Relative tolerance.
        rel: f64,
    },
}

impl PartialEq for AgreementRule {
    fn eq(&self, other: &Self) -> bool {
        match (*self, *other) {
            (AgreementRule::Exact, AgreementRule::Exact) => true,
            (AgreementRule::Tolerance { abs: a1, rel: r1 }, AgreementRule::Tolerance { abs: a2, rel: r2 }) => {
                a1.to_bits() == a2.to_bits() && r1.to_bits() == r2.to_bits()
            }
            _ => false,
        }
    }
}

impl Eq for AgreementRule {}

/// Tag 0 (exact), or tag 1 then the IEEE-754 bits of `abs` and `rel`.
impl Canonical for AgreementRule {
    const WHAT: &'static str = "agreement rule";

    fn encode(&self, w: &mut Writer) {
        match *self {
            AgreementRule::Exact => w.u8(0),
            AgreementRule::Tolerance { abs, rel } => {
                w.u8(1);
                w.u64(abs.to_bits());
                w.u64(rel.to_bits());
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8("agreement rule")? {
            0 => Ok(AgreementRule::Exact),
            1 => {
                Ok(AgreementRule::Tolerance { abs: f64::from_bits(r.u64("abs")?), rel: f64::from_bits(r.u64("rel")?) })
            }
            v => Err(DecodeError::InvalidValue { what: "agreement rule", value: v.into() }),
        }
    }
}

impl AgreementRule {
    /// Whether a tolerance is usable: `abs` and `rel` finite, non-negative and not negative zero.
    pub fn check(&self) -> Result<(), String> {
        match *self {
            AgreementRule::Exact => Ok(()),
            AgreementRule::Tolerance { abs, rel } => {
                for (name, v) in [("abs", abs), ("rel", rel)] {
                    if !v.is_finite() || v.is_sign_negative() {
                        return Err(format!("tolerance {name} must be a finite number >= 0, got {v}"));
                    }
                }
                Ok(())
            }
        }
    }

    /// Whether `value` agrees with `reference` under this rule (exact: the same bits).
    pub fn agrees(&self, reference: f64, value: f64) -> bool {
        match *self {
            AgreementRule::Exact => reference.to_bits() == value.to_bits(),
            AgreementRule::Tolerance { abs, rel } => (value - reference).abs() <= abs + rel * reference.abs(),
        }
    }

    /// Whether two output maps agree. Exact: the same canonical digest. Tolerance: the same names, dtypes and
    /// shapes; float elements within the rule (NaN never agrees), every other element equal.
    pub fn agrees_on(&self, reference: &TensorMap, value: &TensorMap) -> bool {
        use crate::tensor::TensorData as D;
        if *self == AgreementRule::Exact {
            return tensor::digest_map(reference) == tensor::digest_map(value);
        }
        reference.len() == value.len()
            && reference.iter().zip(value).all(|((rn, r), (vn, v))| {
                rn == vn
                    && r.shape() == v.shape()
                    && match (r.data(), v.data()) {
                        (D::F32(a), D::F32(b)) => {
                            a.iter().zip(b).all(|(x, y)| self.agrees(f64::from(*x), f64::from(*y)))
                        }
                        (D::F64(a), D::F64(b)) => a.iter().zip(b).all(|(x, y)| self.agrees(*x, *y)),
                        (a, b) => a == b,
                    }
            })
    }
}

/// An extension field of the body: a tag and opaque bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    /// Tag; the high bit (0x8000) marks the extension critical.
    pub tag: u16,
    /// Hex-encoded in JSON.
    #[serde(with = "hex_bytes")]
    pub value: Vec<u8>,
}

impl Extension {
    /// Whether a verifier that does not know this tag must reject the receipt.
    pub fn is_critical(&self) -> bool {
        self.tag & 0x8000 != 0
    }
}

/// What the receipt id commits to.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiptBody {
    /// Receipt format version.
    pub format: u16,
    /// The model that ran.
    pub model: ModelId,
    /// The verification mode.
    pub mode: Mode,
    /// The engine and its version (e.g. `tract-onnx 0.23.9`).
    pub engine: String,
    /// The job this receipt answers (random per request in `signed` mode; the ledger's job id later).
    pub job: [u8; 32],
    /// Milliseconds since the Unix epoch, as the executor's clock said.
    pub issued_at_ms: u64,
    /// Digest of the canonical input tensor map.
    pub input_digest: Digest,
    /// Digest of the canonical output tensor map.
    pub output_digest: Digest,
    /// Ed25519 public keys of the nodes that executed.
    pub executors: Vec<[u8; 32]>,
    /// When results agree.
    pub rule: AgreementRule,
    /// Future body fields, in strictly increasing tag order.
    pub extensions: Vec<Extension>,
}

/// Evidence that the body is true.
#[derive(Debug, Clone, PartialEq)]
pub enum Evidence {
    /// An executor's ed25519 signature over `VOUCH_RECEIPT_V1 || id` (tag 1).
    Ed25519 {
        /// Signer's public key.
        public_key: [u8; 32],
        /// The signature.
        signature: [u8; 64],
    },
    /// A zero-knowledge proof of the computation (tag 2).
    ZkProof {
        /// Proof system and version.
        system: String,
        /// The model's zk commitment.
        commitment: Vec<u8>,
        /// The proof bytes.
        proof: Vec<u8>,
    },
    /// A TEE attestation whose first report's report data binds the signing key, the chain and a recent block
    /// (tag 3); the executor's ed25519 signature over the receipt id comes beside it.
    TeeQuote(crate::tee::TeeEvidence),
    /// Evidence of a kind this build does not know; kept byte-exact so re-encoding is lossless.
    Unknown {
        /// Its tag.
        tag: u16,
        /// Its payload.
        payload: Vec<u8>,
    },
}

impl Evidence {
    /// The encoding tag.
    pub fn tag(&self) -> u16 {
        match self {
            Evidence::Ed25519 { .. } => 1,
            Evidence::ZkProof { .. } => 2,
            Evidence::TeeQuote { .. } => 3,
            Evidence::Unknown { tag, .. } => *tag,
        }
    }
}

/// Where a receipt was recorded on the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// Hash of the chain's genesis (which network).
    #[serde(with = "hex_array")]
    pub chain: [u8; 32],
    /// Block height.
    pub height: u64,
    /// Block hash.
    #[serde(with = "hex_array")]
    pub block_hash: [u8; 32],
    /// Index of the settling transaction in the block.
    pub tx_index: u32,
    /// The settling transaction (a signed `SettleReceipt` of this receipt's id by its executor).
    #[serde(with = "hex_bytes")]
    pub tx: Vec<u8>,
    /// Merkle path of the transaction under the block's transaction root.
    #[serde(with = "hex_bytes")]
    pub inclusion: Vec<u8>,
    /// Headers (80 bytes each) from the anchoring block up to the finalized block the certificate signs; usually
    /// just the anchoring block's own header.
    #[serde(with = "hex_bytes")]
    pub headers: Vec<u8>,
    /// Finalization certificate of the last header, in the consensus engine's encoding.
    #[serde(with = "hex_bytes")]
    pub certificate: Vec<u8>,
    /// When the settling transaction is a `SettleBatch`: where the receipt sits in the batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchPath>,
}

/// A receipt's place in a settled batch: its leaf index and the Merkle path from its leaf to the batch root (a
/// `commonware_storage::bmt` proof, which carries the leaf count).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchPath {
    /// Leaf index.
    pub index: u32,
    /// The encoded proof.
    #[serde(with = "hex_bytes")]
    pub path: Vec<u8>,
}

/// A receipt: body, the tensors it digests, evidence and an optional anchor.
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    /// What the id commits to.
    pub body: ReceiptBody,
    /// The inputs, unless withheld (their digest is in the body either way).
    pub inputs: Option<TensorMap>,
    /// The outputs.
    pub outputs: TensorMap,
    /// Evidence, in order added.
    pub evidence: Vec<Evidence>,
    /// The ledger anchor, once settled.
    pub anchor: Option<Anchor>,
}

/// Format, model id (CID bytes), mode, engine, job, issue time, input and output digests, executors, rule, and the
/// tag-ordered extensions.
impl Canonical for ReceiptBody {
    const WHAT: &'static str = "receipt body";

    fn encode(&self, w: &mut Writer) {
        w.u16(self.format);
        w.bytes(&self.model.to_cid_bytes());
        w.u8(self.mode as u8);
        w.str(&self.engine);
        w.raw(&self.job);
        w.u64(self.issued_at_ms);
        w.raw(&self.input_digest.0);
        w.raw(&self.output_digest.0);
        w.len(self.executors.len());
        for e in &self.executors {
            w.raw(e);
        }
        self.rule.encode(w);
        w.len(self.extensions.len());
        for e in &self.extensions {
            w.u16(e.tag);
            w.bytes(&e.value);
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let format = r.u16("receipt format")?;
        if format != FORMAT_V1 {
            return Err(DecodeError::UnknownVersion { what: "receipt", found: format, supported: FORMAT_V1 });
        }
        let model = ModelId::from_cid_bytes(r.bytes("model id")?)
            .map_err(|e| DecodeError::NonCanonical { what: "model id", reason: e.to_string() })?;
        let m = r.u8("mode")?;
        let mode = Mode::from_u8(m).ok_or(DecodeError::InvalidValue { what: "mode", value: m.into() })?;
        let engine = r.str("engine")?.to_owned();
        let job = r.array("job")?;
        let issued_at_ms = r.u64("issued_at")?;
        let input_digest = Digest(r.array("input digest")?);
        let output_digest = Digest(r.array("output digest")?);
        let n = r.count("executors")?;
        let executors = (0..n).map(|_| r.array("executor")).collect::<Result<Vec<_>, _>>()?;
        let rule = AgreementRule::decode(r)?;
        let n = r.count("extensions")?;
        let mut extensions: Vec<Extension> = Vec::with_capacity(n);
        for _ in 0..n {
            let tag = r.u16("extension tag")?;
            if extensions.last().is_some_and(|l| l.tag >= tag) {
                return Err(DecodeError::NonCanonical {
                    what: "extensions",
                    reason: format!("tag {tag} out of order"),
                });
            }
            extensions.push(Extension { tag, value: r.bytes("extension")?.to_vec() });
        }
        Ok(Self {
            format,
            model,
            mode,
            engine,
            job,
            issued_at_ms,
            input_digest,
            output_digest,
            executors,
            rule,
            extensions,
        })
    }
}

impl ReceiptBody {
    /// The canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_canonical()
    }

    /// The receipt id.
    pub fn id(&self) -> Digest {
        Digest::of(domain::RECEIPT_ID, &self.to_bytes())
    }
}

impl Evidence {
    fn encode_payload(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            Evidence::Ed25519 { public_key, signature } => {
                w.raw(public_key);
                w.raw(signature);
            }
            Evidence::ZkProof { system, commitment, proof } => {
                w.str(system);
                w.bytes(commitment);
                w.bytes(proof);
            }
            Evidence::TeeQuote(e) => e.encode(&mut w),
            Evidence::Unknown { payload, .. } => w.raw(payload),
        }
        w.finish()
    }

    fn decode_payload(tag: u16, payload: &[u8], limits: crate::canon::Limits) -> Result<Self, DecodeError> {
        let mut r = Reader::with_limits(payload, limits);
        let ev = match tag {
            1 => Evidence::Ed25519 { public_key: r.array("public key")?, signature: r.array("signature")? },
            2 => Evidence::ZkProof {
                system: r.str("proof system")?.to_owned(),
                commitment: r.bytes("commitment")?.to_vec(),
                proof: r.bytes("proof")?.to_vec(),
            },
            3 => Evidence::TeeQuote(crate::tee::TeeEvidence::decode(&mut r)?),
            _ => {
                return Ok(Evidence::Unknown { tag, payload: payload.to_vec() });
            }
        };
        r.finish("evidence")?;
        Ok(ev)
    }
}

/// Chain, height, block hash, transaction index, then the transaction, Merkle path, headers and certificate as byte
/// strings; then, only for a batched settlement, `1`, the leaf index and the batch path (absent, not `0`, otherwise,
/// so anchors of single settlements keep their bytes).
impl Canonical for Anchor {
    const WHAT: &'static str = "anchor";

    fn encode(&self, w: &mut Writer) {
        w.raw(&self.chain);
        w.u64(self.height);
        w.raw(&self.block_hash);
        w.u32(self.tx_index);
        w.bytes(&self.tx);
        w.bytes(&self.inclusion);
        w.bytes(&self.headers);
        w.bytes(&self.certificate);
        if let Some(b) = &self.batch {
            w.u8(1);
            w.u32(b.index);
            w.bytes(&b.path);
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            chain: r.array("anchor chain")?,
            height: r.u64("anchor height")?,
            block_hash: r.array("anchor block hash")?,
            tx_index: r.u32("anchor tx index")?,
            tx: r.bytes("anchor tx")?.to_vec(),
            inclusion: r.bytes("anchor inclusion")?.to_vec(),
            headers: r.bytes("anchor headers")?.to_vec(),
            certificate: r.bytes("anchor certificate")?.to_vec(),
            batch: if r.remaining() == 0 {
                None
            } else {
                match r.u8("anchor batch marker")? {
                    1 => Some(BatchPath { index: r.u32("batch index")?, path: r.bytes("batch path")?.to_vec() }),
                    v => return Err(DecodeError::InvalidValue { what: "anchor batch marker", value: v.into() }),
                }
            },
        })
    }
}

impl Receipt {
    /// The receipt id (of the body).
    pub fn id(&self) -> Digest {
        self.body.id()
    }

    /// The canonical bytes of the whole receipt.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_canonical()
    }

    /// Decodes a canonical receipt, requiring the input to be exactly one receipt.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::from_canonical(bytes)
    }
}

/// `"VOUCHRCT"`, format, length-prefixed body, outputs, optional inputs, evidence (tag and length-prefixed payload
/// each), optional length-prefixed anchor.
impl Canonical for Receipt {
    const WHAT: &'static str = "receipt";

    fn encode(&self, w: &mut Writer) {
        w.raw(MAGIC);
        w.u16(self.body.format);
        w.bytes(&self.body.to_bytes());
        tensor::encode_map(&self.outputs, w);
        match &self.inputs {
            None => w.u8(0),
            Some(m) => {
                w.u8(1);
                tensor::encode_map(m, w);
            }
        }
        w.len(self.evidence.len());
        for e in &self.evidence {
            w.u16(e.tag());
            w.bytes(&e.encode_payload());
        }
        match &self.anchor {
            None => w.u8(0),
            Some(a) => {
                w.u8(1);
                let mut aw = Writer::new();
                a.encode(&mut aw);
                w.bytes(&aw.finish());
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let magic = r.take(MAGIC.len(), "receipt magic")?;
        if magic != MAGIC {
            return Err(DecodeError::NonCanonical { what: "receipt", reason: "bad magic bytes".into() });
        }
        let format = r.u16("receipt format")?;
        if format != FORMAT_V1 {
            return Err(DecodeError::UnknownVersion { what: "receipt", found: format, supported: FORMAT_V1 });
        }
        let mut br = Reader::with_limits(r.bytes("receipt body")?, r.limits);
        let body = ReceiptBody::decode(&mut br)?;
        br.finish("receipt body")?;
        let outputs = tensor::decode_map(r)?;
        let inputs = if r.bool("inputs present")? { Some(tensor::decode_map(r)?) } else { None };
        let n = r.count("evidence")?;
        let mut evidence = Vec::with_capacity(n);
        for _ in 0..n {
            let tag = r.u16("evidence tag")?;
            let payload = r.bytes("evidence payload")?;
            evidence.push(Evidence::decode_payload(tag, payload, r.limits)?);
        }
        let anchor = if r.bool("anchor present")? {
            let mut ar = Reader::with_limits(r.bytes("anchor")?, r.limits);
            let a = Anchor::decode(&mut ar)?;
            ar.finish("anchor")?;
            Some(a)
        } else {
            None
        };
        Ok(Self { body, inputs, outputs, evidence, anchor })
    }
}

impl Receipt {
    /// The JSON view.
    pub fn to_json(&self) -> ReceiptJson {
        let b = &self.body;
        ReceiptJson {
            format: b.format,
            id: self.id().to_hex(),
            model: b.model.to_string(),
            mode: b.mode.name().to_owned(),
            engine: b.engine.clone(),
            job: hex::encode(b.job),
            issued_at_ms: b.issued_at_ms,
            input_digest: b.input_digest.to_hex(),
            output_digest: b.output_digest.to_hex(),
            executors: b.executors.iter().map(hex::encode).collect(),
            rule: b.rule,
            extensions: b.extensions.clone(),
            inputs: self.inputs.as_ref().map(tensor::map_to_json),
            outputs: tensor::map_to_json(&self.outputs),
            evidence: self.evidence.iter().map(EvidenceJson::from).collect(),
            anchor: self.anchor.clone(),
        }
    }
}

/// Why a receipt's JSON view could not be turned back into a receipt.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReceiptJsonError {
    /// The format version is not one this build reads.
    #[error("unknown receipt format version {found} (this build reads {supported})")]
    UnknownFormat {
        /// The version found.
        found: u16,
        /// The version supported.
        supported: u16,
    },
    /// A field does not parse.
    #[error("malformed receipt field `{field}`: {reason}")]
    Field {
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

fn field_err(field: &str, reason: impl ToString) -> ReceiptJsonError {
    ReceiptJsonError::Field { field: field.to_owned(), reason: reason.to_string() }
}

fn hex_fixed<const N: usize>(field: &str, s: &str) -> Result<[u8; N], ReceiptJsonError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|e| field_err(field, format!("expected {N} hex-encoded bytes: {e}")))?;
    Ok(out)
}

/// The JSON view of a receipt. `id` is derived (the verifier recomputes it and compares).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptJson {
    /// Receipt format version.
    pub format: u16,
    /// Hex receipt id.
    pub id: String,
    /// Model id (CID).
    pub model: String,
    /// Mode name.
    pub mode: String,
    /// Engine name and version.
    pub engine: String,
    /// Hex job id.
    pub job: String,
    /// Issue time, ms since the Unix epoch.
    pub issued_at_ms: u64,
    /// Hex input digest.
    pub input_digest: String,
    /// Hex output digest.
    pub output_digest: String,
    /// Hex executor public keys.
    pub executors: Vec<String>,
    /// Agreement rule.
    pub rule: AgreementRule,
    /// Body extensions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<Extension>,
    /// Inputs, if disclosed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<BTreeMap<String, TensorJson>>,
    /// Outputs.
    pub outputs: BTreeMap<String, TensorJson>,
    /// Evidence.
    pub evidence: Vec<EvidenceJson>,
    /// Ledger anchor, once settled.
    #[serde(default)]
    pub anchor: Option<Anchor>,
}

impl ReceiptJson {
    /// Rebuilds the receipt the view shows. Does not check the id or any evidence (that is verification).
    pub fn to_receipt(&self) -> Result<Receipt, ReceiptJsonError> {
        if self.format != FORMAT_V1 {
            return Err(ReceiptJsonError::UnknownFormat { found: self.format, supported: FORMAT_V1 });
        }
        let body = ReceiptBody {
            format: self.format,
            model: self.model.parse().map_err(|e| field_err("model", e))?,
            mode: self.mode.parse().map_err(|e: String| field_err("mode", e))?,
            engine: self.engine.clone(),
            job: hex_fixed("job", &self.job)?,
            issued_at_ms: self.issued_at_ms,
            input_digest: Digest(hex_fixed("input_digest", &self.input_digest)?),
            output_digest: Digest(hex_fixed("output_digest", &self.output_digest)?),
            executors: self.executors.iter().map(|e| hex_fixed("executors", e)).collect::<Result<_, _>>()?,
            rule: self.rule,
            extensions: self.extensions.clone(),
        };
        if body.extensions.windows(2).any(|w| w[0].tag >= w[1].tag) {
            return Err(field_err("extensions", "tags must be strictly increasing"));
        }
        let outputs = tensor::map_from_json(&self.outputs).map_err(|(k, e)| field_err(&format!("outputs.{k}"), e))?;
        let inputs = match &self.inputs {
            None => None,
            Some(m) => Some(tensor::map_from_json(m).map_err(|(k, e)| field_err(&format!("inputs.{k}"), e))?),
        };
        let evidence = self.evidence.iter().map(EvidenceJson::to_evidence).collect::<Result<_, _>>()?;
        Ok(Receipt { body, inputs, outputs, evidence, anchor: self.anchor.clone() })
    }
}

/// The JSON view of one piece of evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EvidenceJson {
    /// An ed25519 signature.
    Ed25519 {
        /// Hex public key.
        public_key: String,
        /// Hex signature.
        signature: String,
    },
    /// A zk proof.
    ZkProof {
        /// Proof system.
        system: String,
        /// Hex commitment.
        commitment: String,
        /// Hex proof.
        proof: String,
    },
    /// A TEE attestation.
    TeeQuote {
        /// Hex receipt key the report data binds.
        key: String,
        /// Hex chain id.
        chain: String,
        /// Hex freshness block hash.
        freshness: String,
        /// Attestation time (Unix ms).
        attested_at_ms: u64,
        /// The platform reports, CPU first.
        reports: Vec<PlatformReportJson>,
    },
    /// Evidence this build does not know.
    Unknown {
        /// Tag.
        tag: u16,
        /// Hex payload.
        payload: String,
    },
}

/// JSON view of one platform report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformReportJson {
    /// Platform name.
    pub platform: String,
    /// Hex report.
    pub report: String,
    /// Hex collateral.
    pub collateral: String,
}

impl From<&Evidence> for EvidenceJson {
    fn from(e: &Evidence) -> Self {
        match e {
            Evidence::Ed25519 { public_key, signature } => {
                EvidenceJson::Ed25519 { public_key: hex::encode(public_key), signature: hex::encode(signature) }
            }
            Evidence::ZkProof { system, commitment, proof } => EvidenceJson::ZkProof {
                system: system.clone(),
                commitment: hex::encode(commitment),
                proof: hex::encode(proof),
            },
            Evidence::TeeQuote(e) => EvidenceJson::TeeQuote {
                key: hex::encode(e.key),
                chain: hex::encode(e.chain),
                freshness: hex::encode(e.freshness),
                attested_at_ms: e.attested_at_ms,
                reports: e
                    .reports
                    .iter()
                    .map(|r| PlatformReportJson {
                        platform: r.platform.clone(),
                        report: hex::encode(&r.report),
                        collateral: hex::encode(&r.collateral),
                    })
                    .collect(),
            },
            Evidence::Unknown { tag, payload } => EvidenceJson::Unknown { tag: *tag, payload: hex::encode(payload) },
        }
    }
}

impl EvidenceJson {
    fn to_evidence(&self) -> Result<Evidence, ReceiptJsonError> {
        let bytes = |f: &str, s: &str| hex::decode(s).map_err(|e| field_err(f, e));
        Ok(match self {
            EvidenceJson::Ed25519 { public_key, signature } => Evidence::Ed25519 {
                public_key: hex_fixed("evidence.public_key", public_key)?,
                signature: hex_fixed("evidence.signature", signature)?,
            },
            EvidenceJson::ZkProof { system, commitment, proof } => Evidence::ZkProof {
                system: system.clone(),
                commitment: bytes("evidence.commitment", commitment)?,
                proof: bytes("evidence.proof", proof)?,
            },
            EvidenceJson::TeeQuote { key, chain, freshness, attested_at_ms, reports } => {
                if reports.is_empty() || reports.len() > crate::tee::MAX_TEE_REPORTS {
                    return Err(field_err("evidence.reports", format!("{} platform reports", reports.len())));
                }
                Evidence::TeeQuote(crate::tee::TeeEvidence {
                    key: hex_fixed("evidence.key", key)?,
                    chain: hex_fixed("evidence.chain", chain)?,
                    freshness: hex_fixed("evidence.freshness", freshness)?,
                    attested_at_ms: *attested_at_ms,
                    reports: reports
                        .iter()
                        .map(|r| {
                            Ok(crate::tee::PlatformReport {
                                platform: r.platform.clone(),
                                report: bytes("evidence.reports.report", &r.report)?,
                                collateral: bytes("evidence.reports.collateral", &r.collateral)?,
                            })
                        })
                        .collect::<Result<_, ReceiptJsonError>>()?,
                })
            }
            EvidenceJson::Unknown { tag, payload } => {
                if matches!(tag, 1..=3) {
                    return Err(field_err("evidence.tag", format!("tag {tag} is a known kind")));
                }
                Evidence::Unknown { tag: *tag, payload: bytes("evidence.payload", payload)? }
            }
        })
    }
}

mod hex_bytes {
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s: String = serde::Deserialize::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

mod hex_array {
    pub fn serialize<S: serde::Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s: String = serde::Deserialize::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

#[cfg(test)]
mod agreement_tests {
    use super::*;
    use crate::tensor::{Tensor, TensorData};

    fn map(name: &str, data: TensorData) -> TensorMap {
        let n = match &data {
            TensorData::F32(v) => v.len(),
            TensorData::I64(v) => v.len(),
            _ => unreachable!(),
        };
        TensorMap::from([(name.to_owned(), Tensor::new(vec![n as u64], data).unwrap())])
    }

    #[test]
    fn tolerance_accepts_close_floats_and_rejects_the_rest() {
        let rule = AgreementRule::Tolerance { abs: 1e-3, rel: 0.0 };
        let a = map("y", TensorData::F32(vec![1.0, -2.0]));
        assert!(rule.agrees_on(&a, &map("y", TensorData::F32(vec![1.0005, -2.0009]))));
        assert!(!rule.agrees_on(&a, &map("y", TensorData::F32(vec![1.0, -2.002]))), "beyond abs");
        assert!(!rule.agrees_on(&a, &map("z", TensorData::F32(vec![1.0, -2.0]))), "another name");
        assert!(!rule.agrees_on(&a, &map("y", TensorData::F32(vec![1.0]))), "another shape");
        assert!(!rule.agrees_on(&a, &map("y", TensorData::F32(vec![f32::NAN, -2.0]))), "NaN");
        let rel = AgreementRule::Tolerance { abs: 0.0, rel: 0.01 };
        let big = map("y", TensorData::F32(vec![1000.0]));
        assert!(rel.agrees_on(&big, &map("y", TensorData::F32(vec![1009.0]))));
        assert!(!rel.agrees_on(&big, &map("y", TensorData::F32(vec![1011.0]))));
        // Integers must be equal under any rule.
        let i = map("y", TensorData::I64(vec![3]));
        assert!(!rule.agrees_on(&i, &map("y", TensorData::I64(vec![4]))));
        assert!(rule.agrees_on(&i, &map("y", TensorData::I64(vec![3]))));
    }

    #[test]
    fn exact_means_the_same_bits() {
        let a = map("y", TensorData::F32(vec![0.0]));
        assert!(AgreementRule::Exact.agrees_on(&a, &a.clone()));
        assert!(!AgreementRule::Exact.agrees_on(&a, &map("y", TensorData::F32(vec![-0.0]))));
        assert!(!AgreementRule::Exact.agrees_on(&a, &map("y", TensorData::F32(vec![f32::from_bits(1)]))));
    }

    #[test]
    fn a_rule_round_trips_and_bad_tolerances_are_refused() {
        for rule in [AgreementRule::Exact, AgreementRule::Tolerance { abs: 1e-4, rel: 1e-3 }] {
            let mut w = Writer::new();
            rule.encode(&mut w);
            let bytes = w.finish();
            let mut r = Reader::new(&bytes);
            assert_eq!(AgreementRule::decode(&mut r).unwrap(), rule);
            assert!(rule.check().is_ok());
        }
        let mut r = Reader::new(&[2]);
        assert!(matches!(AgreementRule::decode(&mut r), Err(DecodeError::InvalidValue { what: "agreement rule", .. })));
        for (abs, rel) in [(f64::NAN, 0.0), (0.0, f64::INFINITY), (-1.0, 0.0), (-0.0, 0.0)] {
            assert!(AgreementRule::Tolerance { abs, rel }.check().is_err(), "{abs} {rel}");
        }
    }
}

#[cfg(test)]
mod anchor_tests {
    use super::*;

    fn anchor(batch: Option<BatchPath>) -> Anchor {
        Anchor {
            chain: [1; 32],
            height: 7,
            block_hash: [2; 32],
            tx_index: 3,
            tx: vec![4; 10],
            inclusion: vec![5; 3],
            headers: vec![6; 80],
            certificate: vec![7; 5],
            batch,
        }
    }

    #[test]
    fn the_batch_path_round_trips_and_is_absent_for_single_settlements() {
        let single = anchor(None);
        let batched = anchor(Some(BatchPath { index: 9, path: vec![8; 40] }));
        for a in [&single, &batched] {
            assert_eq!(&Anchor::from_canonical(&a.to_canonical()).unwrap(), a);
            let json = serde_json::to_string(a).unwrap();
            assert_eq!(&serde_json::from_str::<Anchor>(&json).unwrap(), a);
        }
        // A single settlement's anchor keeps the bytes it had before batches existed: nothing after the certificate.
        let mut w = Writer::new();
        w.raw(&[1; 32]);
        w.u64(7);
        w.raw(&[2; 32]);
        w.u32(3);
        for b in [&[4u8; 10][..], &[5; 3], &[6; 80], &[7; 5]] {
            w.bytes(b);
        }
        assert_eq!(single.to_canonical(), w.finish());
        assert!(!serde_json::to_string(&single).unwrap().contains("batch"));
    }

    #[test]
    fn a_bad_batch_marker_or_a_truncated_path_is_refused() {
        let bytes = anchor(Some(BatchPath { index: 9, path: vec![8; 40] })).to_canonical();
        let single_len = anchor(None).to_canonical().len();
        for marker in [0u8, 2, 255] {
            let mut b = bytes.clone();
            b[single_len] = marker;
            assert_eq!(
                Anchor::from_canonical(&b).unwrap_err(),
                DecodeError::InvalidValue { what: "anchor batch marker", value: marker.into() }
            );
        }
        for n in single_len + 1..bytes.len() {
            assert!(Anchor::from_canonical(&bytes[..n]).is_err(), "a prefix of {n} bytes decoded");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(Anchor::from_canonical(&longer), Err(DecodeError::TrailingBytes { .. })));
    }
}

//! Building, signing and offline verification of Vouch inference receipts.
//!
//! [`Issuer`] builds and signs every receipt body a node issues (one place for the format, the engine string, the
//! clock and the executor key).
//!
//! [`verify`] checks, in order: the format version, that the disclosed outputs (and inputs) hash to the
//! digests in the body, that the stated id is the id of the body, that the evidence proves the body for its
//! mode, and, when given the model bytes, that they are the model the receipt names. Each failure is its own
//! [`ReceiptError`] variant so a caller (and `vouch verify`) can say exactly why a receipt is invalid.

use vouch_codec::receipt::{FORMAT_V1, ReceiptJsonError};
use vouch_codec::tensor::digest_map;
use vouch_codec::{Digest, Evidence, Mode, ModelId, Receipt, ReceiptJson, TensorMap, domain};

mod issue;

pub use issue::{Issuer, ZkProof, system_clock_ms};

/// Why a receipt is invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReceiptError {
    /// The receipt's format version is not one this build understands.
    #[error("unknown receipt format version {found} (this build verifies version {supported})")]
    UnknownFormatVersion {
        /// Version found.
        found: u16,
        /// Version supported.
        supported: u16,
    },
    /// The receipt does not parse.
    #[error("malformed receipt: {0}")]
    Malformed(String),
    /// The outputs do not hash to the body's output digest.
    #[error(
        "output digest mismatch: the receipt commits to outputs {stated}, the outputs it carries hash to {computed}"
    )]
    OutputDigestMismatch {
        /// Digest in the body.
        stated: Digest,
        /// Digest of the carried outputs.
        computed: Digest,
    },
    /// The disclosed inputs do not hash to the body's input digest.
    #[error("input digest mismatch: the receipt commits to inputs {stated}, the inputs it carries hash to {computed}")]
    InputDigestMismatch {
        /// Digest in the body.
        stated: Digest,
        /// Digest of the carried inputs.
        computed: Digest,
    },
    /// The stated id is not the id of the body (a body field was changed).
    #[error(
        "receipt id mismatch: the receipt says {stated} but its contents hash to {computed} (a field was changed after signing)"
    )]
    IdMismatch {
        /// The id the receipt states.
        stated: String,
        /// The id of its body.
        computed: Digest,
    },
    /// A body extension marked critical is not understood.
    #[error("unknown critical extension {tag:#06x}")]
    UnknownCriticalExtension {
        /// Its tag.
        tag: u16,
    },
    /// No evidence at all.
    #[error("receipt carries no evidence")]
    NoEvidence,
    /// A signature does not verify.
    #[error("bad signature by {signer}: it does not sign this receipt")]
    BadSignature {
        /// Hex public key of the signer.
        signer: String,
    },
    /// A signer is not one of the body's executors.
    #[error("signature by {signer}, who is not an executor of this receipt")]
    SignerNotExecutor {
        /// Hex public key.
        signer: String,
    },
    /// An executor did not sign.
    #[error("executor {executor} did not sign this receipt")]
    MissingSignature {
        /// Hex public key.
        executor: String,
    },
    /// The mode requires a different number of executors.
    #[error("mode {mode} requires {expected} executor(s), receipt lists {found}")]
    ExecutorCount {
        /// Mode name.
        mode: &'static str,
        /// Required count.
        expected: String,
        /// Count listed.
        found: usize,
    },
    /// Evidence of a kind this build cannot check.
    #[error("cannot verify evidence of kind {kind} with this build")]
    UnsupportedEvidence {
        /// Kind name or tag.
        kind: String,
    },
    /// A zk-mode receipt without a proof.
    #[error("zk receipt carries no proof")]
    ZkProofMissing,
    /// The same evidence twice (a signer's signature, or a second proof): refused before any of it is checked.
    #[error("duplicate evidence: {0}")]
    DuplicateEvidence(String),
    /// The zk proof does not verify.
    #[error("zk proof invalid: {reason}")]
    ZkProofInvalid {
        /// The verifier's reason.
        reason: String,
    },
    /// The proof's commitment is not the one the receipt body records.
    #[error("zk commitment mismatch: the proof opens against another commitment than the receipt records")]
    ZkCommitmentMismatch,
    /// The input and salt given do not open the receipt's private input commitment.
    #[error("private input mismatch: the input and salt given do not open the receipt's input commitment")]
    PrivateInputMismatch,
    /// The receipt's tensors are not a zk statement (one int16 input, one int16 output).
    #[error("zk receipt tensors: {0}")]
    ZkTensors(String),
    /// A `tee`-mode receipt without its attestation, or with more than one.
    #[error("tee receipt must carry exactly one TEE attestation (found {found})")]
    TeeEvidenceCount {
        /// How many it carries.
        found: usize,
    },
    /// The attestation is not the one the executor's signature binds (body extension 0x0003).
    #[error("tee attestation mismatch: the receipt body binds another attestation than the one it carries")]
    TeeEvidenceMismatch,
    /// The attestation is refused.
    #[error("tee attestation refused: {0}")]
    Tee(#[from] vouch_tee::TeeError),
    /// The model bytes given are not the receipt's model.
    #[error("model bytes do not match the receipt's model id: receipt names {expected}, the file is {actual}")]
    ModelMismatch {
        /// Model id in the receipt.
        expected: ModelId,
        /// Id of the bytes given.
        actual: ModelId,
    },
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The receipt id.
    pub id: Digest,
    /// The model.
    pub model: ModelId,
    /// The mode.
    pub mode: Mode,
    /// Executors whose signatures verified.
    pub signers: Vec<[u8; 32]>,
    /// Whether the model bytes were checked too.
    pub model_checked: bool,
    /// For a zk proof: the number of layer proofs verified (1 for a private-input proof: one batch STARK).
    pub zk_layers: Option<usize>,
    /// For a private-input zk proof: the commitment (hex) to the input the proof is about.
    pub private_input: Option<String>,
    /// For a private-input zk proof of a model with hidden weights: the commitment (hex) to the weights the proof is
    /// about (the model's zk identity; the weights themselves are in no receipt).
    pub weights_commitment: Option<String>,
    /// For a `tee` receipt: what its attestation established.
    pub tee: Option<vouch_tee::Attestation>,
}

/// The engine string receipts issued by this build carry.
pub fn engine_name(engine: &str, version: &str) -> String {
    format!("{engine} {version}")
}

/// Body extension tag recording the commitment to a private input (32 bytes), the public statement of a
/// private-input zk proof.
pub const EXT_ZK_INPUT_COMMITMENT: u16 = 0x0002;

/// The input digest of a private-input receipt: a digest of the input commitment (the input itself is never
/// hashed where anyone could test guesses against it).
pub fn private_input_digest(c: &vouch_zk::private::InputCommitment) -> Digest {
    Digest(*blake3::Hasher::new_derive_key("VOUCH_PRIVATE_INPUT_DIGEST_V1").update(&c.to_bytes()).finalize().as_bytes())
}

/// Checks that a private-input receipt's input commitment opens to the float input `x` with `salt` (the requester
/// keeps both): `x` is quantized with the input scale of the model structure the proof carries.
pub fn check_private_opening(receipt: &Receipt, x: &[f32], salt: &vouch_zk::private::Salt) -> Result<(), ReceiptError> {
    let ext = receipt
        .body
        .extensions
        .iter()
        .find(|e| e.tag == EXT_ZK_INPUT_COMMITMENT)
        .ok_or_else(|| ReceiptError::ZkTensors("the receipt has no private input commitment".into()))?;
    let stated = vouch_zk::private::InputCommitment::from_bytes(&ext.value)
        .map_err(|e| ReceiptError::ZkTensors(e.to_string()))?;
    let structure = receipt
        .evidence
        .iter()
        .find_map(|e| match e {
            Evidence::ZkProof { system, proof, .. } if vouch_zk::private::private_system_version(system).is_some() => {
                vouch_zk::private::PrivateEvidence::from_bytes(proof).ok().map(|e| e.structure)
            }
            _ => None,
        })
        .ok_or(ReceiptError::ZkProofMissing)?;
    let expected: usize = structure.shapes.first().map(|s| s.iter().product()).unwrap_or(0);
    if x.len() != expected {
        return Err(ReceiptError::ZkTensors(format!("the input has {} values, the model takes {expected}", x.len())));
    }
    if vouch_zk::private::commit_input(&structure.quantize_input(x), salt) != stated {
        return Err(ReceiptError::PrivateInputMismatch);
    }
    Ok(())
}

/// Body extension tag recording the digest of the TEE attestation a `tee` receipt carries (32 bytes), so the
/// executor's signature binds it.
pub const EXT_TEE_EVIDENCE: u16 = 0x0003;

fn check_tee(receipt: &Receipt, policy: &vouch_tee::Policy) -> Result<vouch_tee::Attestation, ReceiptError> {
    let evs: Vec<&vouch_codec::TeeEvidence> = receipt
        .evidence
        .iter()
        .filter_map(|e| match e {
            Evidence::TeeQuote(t) => Some(t),
            _ => None,
        })
        .collect();
    let [ev] = evs.as_slice() else { return Err(ReceiptError::TeeEvidenceCount { found: evs.len() }) };
    let bound = receipt.body.extensions.iter().find(|e| e.tag == EXT_TEE_EVIDENCE);
    if bound.map(|e| e.value.as_slice()) != Some(ev.digest().as_slice()) {
        return Err(ReceiptError::TeeEvidenceMismatch);
    }
    let executor = &receipt.body.executors[0];
    // The attestation is judged at the time the receipt was issued: it had to be valid (and young enough) then.
    let at_s = receipt.body.issued_at_ms / 1000;
    Ok(vouch_tee::verify_evidence(ev, vouch_tee::Expect { key: Some(executor), chain: None }, policy, at_s)?)
}

/// Body extension tag recording `blake3(zk commitment)`, so the executor's signature binds the model id to
/// the commitment its proof opens against.
pub const EXT_ZK_COMMITMENT: u16 = 0x0001;

fn single_i16(map: &TensorMap, what: &str) -> Result<Vec<i16>, ReceiptError> {
    let mut it = map.values();
    match (it.next(), it.next()) {
        (Some(t), None) => match t.data() {
            vouch_codec::TensorData::I16(v) => Ok(v.clone()),
            _ => Err(ReceiptError::ZkTensors(format!("the {what} must be int16, not {}", t.dtype()))),
        },
        _ => Err(ReceiptError::ZkTensors(format!("exactly one {what} tensor expected"))),
    }
}

/// What a verified zk proof established: its layer proofs, the private input's commitment and the hidden weights'
/// commitment if any.
type ZkChecked = (usize, Option<String>, Option<String>);

fn check_zk(receipt: &Receipt, system: &str, commitment: &[u8], proof: &[u8]) -> Result<ZkChecked, ReceiptError> {
    let private = vouch_zk::private::private_system_version(system).is_some();
    if system != vouch_zk::SYSTEM && !private {
        return Err(ReceiptError::UnsupportedEvidence { kind: format!("zk_proof ({system})") });
    }
    let recorded = receipt.body.extensions.iter().find(|e| e.tag == EXT_ZK_COMMITMENT);
    if recorded.map(|e| e.value.as_slice()) != Some(blake3::hash(commitment).as_bytes().as_slice()) {
        return Err(ReceiptError::ZkCommitmentMismatch);
    }
    if private {
        let ext = receipt.body.extensions.iter().find(|e| e.tag == EXT_ZK_INPUT_COMMITMENT).ok_or_else(|| {
            ReceiptError::ZkTensors("a private-input proof needs the input commitment in the receipt body".into())
        })?;
        let input = vouch_zk::private::InputCommitment::from_bytes(&ext.value)
            .map_err(|e| ReceiptError::ZkTensors(e.to_string()))?;
        if receipt.body.input_digest != private_input_digest(&input) {
            return Err(ReceiptError::ZkTensors("the input digest is not the input commitment's".into()));
        }
        let y = single_i16(&receipt.outputs, "output")?;
        vouch_zk::private::verify_private_evidence(system, commitment, proof, &input, &y)
            .map_err(|e| ReceiptError::ZkProofInvalid { reason: e.to_string() })?;
        // The commitment decoded when the proof verified against it.
        let weights = vouch_zk::private::PrivateCommitment::from_bytes(commitment)
            .ok()
            .and_then(|c| c.weights)
            .map(|w| w.to_hex());
        return Ok((1, Some(input.to_hex()), weights));
    }
    let inputs = receipt.inputs.as_ref().ok_or_else(|| ReceiptError::ZkTensors("the input is not disclosed".into()))?;
    let x = single_i16(inputs, "input")?;
    let y = single_i16(&receipt.outputs, "output")?;
    vouch_zk::verify_evidence(commitment, proof, &x, &y)
        .map(|n| (n, None, None))
        .map_err(|e| ReceiptError::ZkProofInvalid { reason: e.to_string() })
}

/// Options for [`verify`].
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The id the receipt claims for itself (from its JSON view), checked against the body.
    pub stated_id: Option<String>,
    /// The id of the model bytes the caller holds, checked against the receipt's model.
    pub model_bytes_id: Option<ModelId>,
    /// What a `tee` receipt's attestation must satisfy (the default policy when `None`).
    pub tee_policy: Option<vouch_tee::Policy>,
}

/// Parses a receipt's JSON text and verifies it (the stated `id` included).
pub fn verify_json(text: &str, model_bytes_id: Option<ModelId>) -> Result<Verified, ReceiptError> {
    verify_json_with(text, VerifyOptions { model_bytes_id, ..VerifyOptions::default() })
}

/// [`verify_json`] with options (the stated id is taken from the JSON).
pub fn verify_json_with(text: &str, opts: VerifyOptions) -> Result<Verified, ReceiptError> {
    let json: ReceiptJson = serde_json::from_str(text).map_err(|e| {
        // Report an unknown version as such even when the rest of the document has changed shape.
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(text)
            && let Some(found) = v.get("format").and_then(|f| f.as_u64())
            && found != u64::from(FORMAT_V1)
        {
            return ReceiptError::UnknownFormatVersion {
                found: found.min(u16::MAX.into()) as u16,
                supported: FORMAT_V1,
            };
        }
        ReceiptError::Malformed(e.to_string())
    })?;
    let receipt = json.to_receipt().map_err(|e| match e {
        ReceiptJsonError::UnknownFormat { found, supported } => ReceiptError::UnknownFormatVersion { found, supported },
        other => ReceiptError::Malformed(other.to_string()),
    })?;
    verify(&receipt, &VerifyOptions { stated_id: Some(json.id), ..opts })
}

/// Verifies a receipt offline.
pub fn verify(receipt: &Receipt, opts: &VerifyOptions) -> Result<Verified, ReceiptError> {
    let body = &receipt.body;
    if body.format != FORMAT_V1 {
        return Err(ReceiptError::UnknownFormatVersion { found: body.format, supported: FORMAT_V1 });
    }
    let computed = digest_map(&receipt.outputs);
    if computed != body.output_digest {
        return Err(ReceiptError::OutputDigestMismatch { stated: body.output_digest, computed });
    }
    if let Some(inputs) = &receipt.inputs {
        let computed = digest_map(inputs);
        if computed != body.input_digest {
            return Err(ReceiptError::InputDigestMismatch { stated: body.input_digest, computed });
        }
    }
    let id = body.id();
    if let Some(stated) = &opts.stated_id
        && *stated != id.to_hex()
    {
        return Err(ReceiptError::IdMismatch { stated: stated.clone(), computed: id });
    }
    if let Some(ext) = body.extensions.iter().find(|e| e.is_critical()) {
        return Err(ReceiptError::UnknownCriticalExtension { tag: ext.tag });
    }
    let signers = check_signatures(receipt, &id)?;
    let tee = match body.mode {
        Mode::Tee => Some(check_tee(receipt, opts.tee_policy.as_ref().unwrap_or(&vouch_tee::Policy::default()))?),
        _ => None,
    };
    let mut zk = None;
    for ev in &receipt.evidence {
        if let Evidence::ZkProof { system, commitment, proof } = ev {
            zk = Some(check_zk(receipt, system, commitment, proof)?);
        }
    }
    if body.mode == Mode::Zk && zk.is_none() {
        return Err(ReceiptError::ZkProofMissing);
    }
    if let Some(actual) = opts.model_bytes_id
        && actual != body.model
    {
        return Err(ReceiptError::ModelMismatch { expected: body.model, actual });
    }
    Ok(Verified {
        id,
        model: body.model,
        mode: body.mode,
        signers,
        model_checked: opts.model_bytes_id.is_some(),
        zk_layers: zk.as_ref().map(|z| z.0),
        private_input: zk.as_ref().and_then(|z| z.1.clone()),
        weights_commitment: zk.and_then(|z| z.2),
        tee,
    })
}

fn check_signatures(receipt: &Receipt, id: &Digest) -> Result<Vec<[u8; 32]>, ReceiptError> {
    let body = &receipt.body;
    let n = body.executors.len();
    match body.mode {
        Mode::Signed if n != 1 => {
            return Err(ReceiptError::ExecutorCount { mode: "signed", expected: "1".into(), found: n });
        }
        Mode::Quorum if n < 2 => {
            return Err(ReceiptError::ExecutorCount { mode: "quorum", expected: "at least 2".into(), found: n });
        }
        Mode::Zk if n > 1 => {
            return Err(ReceiptError::ExecutorCount { mode: "zk", expected: "at most 1".into(), found: n });
        }
        Mode::Tee if n != 1 => {
            return Err(ReceiptError::ExecutorCount { mode: "tee", expected: "1".into(), found: n });
        }
        _ => {}
    }
    if receipt.evidence.is_empty() {
        return Err(ReceiptError::NoEvidence);
    }
    if receipt.evidence.iter().filter(|e| matches!(e, Evidence::ZkProof { .. })).count() > 1 {
        return Err(ReceiptError::DuplicateEvidence("more than one zk proof".into()));
    }
    if body.mode == Mode::Zk && !receipt.evidence.iter().any(|e| matches!(e, Evidence::ZkProof { .. })) {
        return Err(ReceiptError::ZkProofMissing);
    }
    let mut signers = Vec::new();
    for ev in &receipt.evidence {
        match ev {
            Evidence::Ed25519 { public_key, signature } => {
                if !body.executors.contains(public_key) {
                    return Err(ReceiptError::SignerNotExecutor { signer: hex::encode(public_key) });
                }
                if signers.contains(public_key) {
                    return Err(ReceiptError::DuplicateEvidence(format!(
                        "two signatures by {}",
                        hex::encode(public_key)
                    )));
                }
                vouch_crypto::verify(domain::RECEIPT_SIGNATURE, public_key, &id.0, signature)
                    .map_err(|_| ReceiptError::BadSignature { signer: hex::encode(public_key) })?;
                signers.push(*public_key);
            }
            // Checked by the caller against the receipt's tensors.
            Evidence::ZkProof { .. } if body.mode == Mode::Zk => {}
            Evidence::ZkProof { .. } => {
                return Err(ReceiptError::UnsupportedEvidence { kind: "zk_proof".into() });
            }
            // Checked by the caller against the executor's key.
            Evidence::TeeQuote(_) if body.mode == Mode::Tee => {}
            Evidence::TeeQuote(_) => {
                return Err(ReceiptError::UnsupportedEvidence { kind: "tee_quote".into() });
            }
            Evidence::Unknown { tag, .. } => {
                return Err(ReceiptError::UnsupportedEvidence { kind: format!("tag {tag}") });
            }
        }
    }
    if let Some(missing) = body.executors.iter().find(|e| !signers.contains(e)) {
        return Err(ReceiptError::MissingSignature { executor: hex::encode(missing) });
    }
    Ok(signers)
}

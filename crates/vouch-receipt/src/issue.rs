//! The issuer: every receipt body a node signs is built here, from the executor key, the engine string and a clock.

use vouch_codec::receipt::FORMAT_V1;
use vouch_codec::tensor::digest_map;
use vouch_codec::{AgreementRule, Digest, Evidence, Extension, Mode, ModelId, Receipt, ReceiptBody, TensorMap, domain};
use vouch_crypto::NodeKey;

use crate::{EXT_TEE_EVIDENCE, EXT_ZK_COMMITMENT, EXT_ZK_INPUT_COMMITMENT, private_input_digest};

/// Milliseconds since the Unix epoch by the system clock.
pub fn system_clock_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Builds and signs receipts for one executor.
pub struct Issuer<'k> {
    key: &'k NodeKey,
    engine: String,
    clock: fn() -> u64,
}

/// What a receipt states beyond the issuer's own fields (format, engine, executor).
struct Statement {
    mode: Mode,
    model: ModelId,
    job: [u8; 32],
    issued_at_ms: u64,
    input_digest: Digest,
    output_digest: Digest,
    executors: Vec<[u8; 32]>,
    rule: AgreementRule,
    extensions: Vec<Extension>,
}

impl<'k> Issuer<'k> {
    /// An issuer signing with `key`, naming `engine` (e.g. `tract-onnx 0.23.9`), timed by the system clock.
    pub fn new(key: &'k NodeKey, engine: impl Into<String>) -> Self {
        Self { key, engine: engine.into(), clock: system_clock_ms }
    }

    /// The same issuer with another clock (milliseconds since the Unix epoch): for fixtures and tests.
    pub fn with_clock(self, clock: fn() -> u64) -> Self {
        Self { clock, ..self }
    }

    /// The one place a receipt body is assembled.
    fn body(&self, s: Statement) -> ReceiptBody {
        ReceiptBody {
            format: FORMAT_V1,
            model: s.model,
            mode: s.mode,
            engine: self.engine.clone(),
            job: s.job,
            issued_at_ms: s.issued_at_ms,
            input_digest: s.input_digest,
            output_digest: s.output_digest,
            executors: s.executors,
            rule: s.rule,
            extensions: s.extensions,
        }
    }

    /// This executor's signature over a body's id.
    pub fn sign(&self, body: &ReceiptBody) -> [u8; 64] {
        self.key.sign(domain::RECEIPT_SIGNATURE, &body.id().0)
    }

    /// A receipt of this executor alone, signed now.
    fn single(
        &self,
        (mode, model, job): (Mode, ModelId, [u8; 32]),
        input_digest: Digest,
        outputs: TensorMap,
        extensions: Vec<Extension>,
    ) -> Receipt {
        let body = self.body(Statement {
            mode,
            model,
            job,
            issued_at_ms: (self.clock)(),
            input_digest,
            output_digest: digest_map(&outputs),
            executors: vec![self.key.public_key()],
            rule: AgreementRule::Exact,
            extensions,
        });
        let signature = self.sign(&body);
        Receipt {
            body,
            inputs: None,
            outputs,
            evidence: vec![Evidence::Ed25519 { public_key: self.key.public_key(), signature }],
            anchor: None,
        }
    }

    /// A `signed`-mode receipt for `job`; the inputs are carried when `disclose_inputs` (their digest always is).
    pub fn signed(
        &self,
        model: ModelId,
        job: [u8; 32],
        inputs: TensorMap,
        disclose_inputs: bool,
        outputs: TensorMap,
    ) -> Receipt {
        let mut r = self.single((Mode::Signed, model, job), digest_map(&inputs), outputs, vec![]);
        r.inputs = disclose_inputs.then_some(inputs);
        r
    }

    /// A `tee`-mode receipt: the body binds the attestation's digest (extension [`EXT_TEE_EVIDENCE`]), the
    /// evidence carries the attestation whose report data binds this issuer's key, beside its signature.
    pub fn tee(
        &self,
        model: ModelId,
        job: [u8; 32],
        inputs: TensorMap,
        disclose_inputs: bool,
        outputs: TensorMap,
        attestation: vouch_codec::TeeEvidence,
    ) -> Receipt {
        let ext = Extension { tag: EXT_TEE_EVIDENCE, value: attestation.digest().to_vec() };
        let mut r = self.single((Mode::Tee, model, job), digest_map(&inputs), outputs, vec![ext]);
        r.inputs = disclose_inputs.then_some(inputs);
        r.evidence.push(Evidence::TeeQuote(attestation));
        r
    }

    /// A `zk`-mode receipt: the quantized input and output, the signature (which binds `blake3(commitment)` through
    /// body extension [`EXT_ZK_COMMITMENT`]) and the proof (`system`, the model commitment, the evidence bytes).
    pub fn zk(&self, model: ModelId, job: [u8; 32], inputs: TensorMap, outputs: TensorMap, proof: ZkProof) -> Receipt {
        self.zk_receipt((model, job), digest_map(&inputs), Some(inputs), outputs, vec![], proof)
    }

    /// A private-input `zk`-mode receipt: no input, its commitment in body extension [`EXT_ZK_INPUT_COMMITMENT`]
    /// (the input digest is a digest of that commitment), the quantized output, the signature and the proof.
    pub fn zk_private(
        &self,
        model: ModelId,
        job: [u8; 32],
        input: vouch_zk::private::InputCommitment,
        outputs: TensorMap,
        proof: ZkProof,
    ) -> Receipt {
        let ext = Extension { tag: EXT_ZK_INPUT_COMMITMENT, value: input.to_bytes().to_vec() };
        self.zk_receipt((model, job), private_input_digest(&input), None, outputs, vec![ext], proof)
    }

    fn zk_receipt(
        &self,
        (model, job): (ModelId, [u8; 32]),
        input_digest: Digest,
        inputs: Option<TensorMap>,
        outputs: TensorMap,
        more: Vec<Extension>,
        proof: ZkProof,
    ) -> Receipt {
        // Extensions in increasing tag order: the commitment binding (0x0001) first.
        let binding = Extension { tag: EXT_ZK_COMMITMENT, value: blake3::hash(&proof.commitment).as_bytes().to_vec() };
        let extensions = std::iter::once(binding).chain(more).collect();
        let mut r = self.single((Mode::Zk, model, job), input_digest, outputs, extensions);
        r.evidence.push(Evidence::ZkProof {
            system: proof.system,
            commitment: proof.commitment,
            proof: proof.evidence,
        });
        r.inputs = inputs;
        r
    }

    /// The body every honest executor of a quorum job signs for `outputs`: the job's time (its block's timestamp),
    /// the round's executors and the model's agreement rule, so independent executors produce the same id.
    #[allow(clippy::too_many_arguments)] // each is a fact of the ledger's job, named at the call site
    pub fn quorum_body(
        &self,
        model: ModelId,
        job: [u8; 32],
        issued_at_ms: u64,
        input_digest: Digest,
        outputs: &TensorMap,
        executors: Vec<[u8; 32]>,
        rule: AgreementRule,
    ) -> ReceiptBody {
        self.body(Statement {
            mode: Mode::Quorum,
            model,
            job,
            issued_at_ms,
            input_digest,
            output_digest: digest_map(outputs),
            executors,
            rule,
            extensions: vec![],
        })
    }
}

/// A zk proof as a receipt carries it.
pub struct ZkProof {
    /// The proof system (`vouch_zk::SYSTEM` or `vouch_zk::private::PRIVATE_SYSTEM`).
    pub system: String,
    /// The model's commitment the proof opens against.
    pub commitment: Vec<u8>,
    /// The evidence bytes (structure and proof).
    pub evidence: Vec<u8>,
}

//! Each instance's own negative test: start from the honest traces of a model that has every kind of instance,
//! change the proven value of one real row of one instance, prove, and the verifier rejects the proof at that
//! instance (or, for the table and lookup instances, whose perturbed column only enters bus interactions, as an
//! unbalanced LogUp sum). (The test profile builds p3-batch-stark without debug assertions, so its prover does not refuse the
//! bad witness itself: the verifier is what is tested.)

use p3_field::PrimeCharacteristicRing;
use p3_matrix::Matrix;
use vouch_quant::{FloatGraph, FloatLayer, Pool};

use super::air::Inst;
use super::*;
use crate::config::SECURITY;

/// Seeded draws in `[-1, 1)` (xorshift).
fn uniform(mut s: u64) -> impl FnMut() -> f32 {
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// Input 2x6x6 -> ReLU on the input (a relu instance) -> padded Conv 2->16 (linear, 18 taps) -> MaxPool 2x2
/// (maxpool) -> Flatten (144) -> Dense 144->4 (mac + requant) -> Add and Mul by constants (affine: a linear
/// instance of one tap) -> Sigmoid (table + lookup) -> Softmax (exp table + softmax).
fn every_instance_model() -> (QGraph, Vec<i16>) {
    let mut next = uniform(11);
    let conv = Pool { kernel: [3, 3], stride: [1, 1], pads: [1, 1, 1, 1] };
    let pool = Pool { kernel: [2, 2], stride: [2, 2], pads: [0, 0, 0, 0] };
    let layers = vec![
        FloatLayer::Relu,
        FloatLayer::Conv {
            w: (0..16 * 18).map(|_| next() * 0.3).collect(),
            b: vec![0.05; 16],
            ic: 2,
            oc: 16,
            geo: conv,
        },
        FloatLayer::MaxPool(pool),
        FloatLayer::Reshape(vec![1, 144]),
        FloatLayer::Dense { w: (0..144 * 4).map(|_| next() * 0.1).collect(), b: vec![0.0; 4], input: 144, output: 4 },
        FloatLayer::Affine { mul: vec![1.5, -0.5, 2.0, 1.0], add: vec![0.25, -0.1, 0.0, 0.5] },
        FloatLayer::Sigmoid,
        FloatLayer::Softmax,
    ];
    let shapes = vec![
        vec![1, 2, 6, 6],
        vec![1, 2, 6, 6],
        vec![1, 16, 6, 6],
        vec![1, 16, 3, 3],
        vec![1, 144],
        vec![1, 4],
        vec![1, 4],
        vec![1, 4],
        vec![1, 4],
    ];
    let g = FloatGraph { input: "x".into(), output: "y".into(), shapes, layers };
    let xs: Vec<Vec<f32>> = (0..6).map(|_| (0..72).map(|_| next()).collect()).collect();
    let (q, _) = vouch_quant::quantize(&g, &xs).expect("quantizes");
    let x = q.quantize_input(&xs[0]);
    (q, x)
}

fn kind(inst: &Inst) -> &'static str {
    match inst {
        Inst::Input(_) => "input",
        Inst::Sponge(_) => "sponge",
        Inst::Linear(_) => "linear",
        Inst::Relu(_) => "relu",
        Inst::Mac(_) => "mac",
        Inst::MaxPool(_) => "maxpool",
        Inst::Requant(_) => "requant",
        Inst::Table(_) => "table",
        Inst::Lookup(_) => "lookup",
        Inst::Softmax(_) => "softmax",
        Inst::Params(_) => "params",
        Inst::Packed(_) => "packed",
        Inst::Bytes(_) => "bytes",
        Inst::Output(_) => "output",
    }
}

/// Input 2x6x6 -> padded Conv 2->6 with a fused ReLU (linear, 18 taps) -> Flatten (216) -> Dense 216->5 (mac +
/// requant) -> Dense 5->3 (linear): every instance that reads hidden weights.
fn hidden_weights_model() -> (QGraph, Vec<i16>) {
    let mut next = uniform(29);
    let conv = Pool { kernel: [3, 3], stride: [1, 1], pads: [1, 1, 1, 1] };
    let layers = vec![
        FloatLayer::Conv { w: (0..6 * 18).map(|_| next() * 0.3).collect(), b: vec![0.05; 6], ic: 2, oc: 6, geo: conv },
        FloatLayer::Relu,
        FloatLayer::Reshape(vec![1, 216]),
        FloatLayer::Dense { w: (0..216 * 5).map(|_| next() * 0.1).collect(), b: vec![0.1; 5], input: 216, output: 5 },
        FloatLayer::Dense { w: (0..5 * 3).map(|_| next()).collect(), b: vec![-0.2, 0.0, 0.3], input: 5, output: 3 },
    ];
    let shapes = vec![vec![1, 2, 6, 6], vec![1, 6, 6, 6], vec![1, 6, 6, 6], vec![1, 216], vec![1, 5], vec![1, 3]];
    let g = FloatGraph { input: "x".into(), output: "y".into(), shapes, layers };
    let xs: Vec<Vec<f32>> = (0..6).map(|_| (0..72).map(|_| next()).collect()).collect();
    let (q, _) = vouch_quant::quantize(&g, &xs).expect("quantizes");
    let x = q.quantize_input(&xs[0]);
    (q, x)
}

/// Proves the honest traces (which verify), then each instance's traces with one real row's proven value changed:
/// the verifier rejects each at that instance, or (instances whose perturbed column only enters bus interactions)
/// as an unbalanced LogUp sum.
fn perturb_each_instance(prover: &PrivateProver, q: &QGraph, x: &[i16], expected_kinds: &[&str]) {
    let kinds: Vec<&str> = prover.airs.iter().map(|a| kind(&a.inst)).collect();
    for k in expected_kinds {
        assert!(kinds.contains(k), "the model has no {k} instance: {kinds:?}");
    }
    let salt = Salt::random();
    let (y, honest) = prover.traces(x, &salt).unwrap();
    let s = public_structure(q);
    let input = commit_input(x, &salt);
    let (_, p) = prover.prove_traces(&y, &honest, &salt, x).unwrap();
    assert_eq!(verify_private(&s, prover.commitment(), &input, &y, &p), Ok(()));
    for (i, air) in prover.airs.iter().enumerate() {
        let mut traces = honest.clone();
        // Row 1 of a sponge is its first absorbing permutation; row 0 of every other instance is a real row.
        let row = if matches!(air.inst, Inst::Sponge(_)) { 1 } else { 0 };
        let col = air.inst.proven_column();
        let width = traces[i].width();
        traces[i].values[row * width + col] += Val::ONE;
        let (_, p) = prover.prove_traces(&y, &traces, &salt, x).unwrap();
        let r = verify_private(&s, prover.commitment(), &input, &y, &p);
        let expected = format!("instance {i}: {}", air.inst.describe());
        if matches!(air.inst, Inst::Table(_) | Inst::Lookup(_) | Inst::Params(_) | Inst::Bytes(_)) {
            // The table's multiplicity, the lookup's `y`, a plain hidden parameter and a byte's multiplicity enter
            // only bus interactions (no constraint of their own): the batch's LogUp sum is what no longer balances.
            let lookup = ZkError::Proof { reason: "Lookup(TerminalSumNonZero)".into(), instance: None };
            assert_eq!(r, Err(lookup), "{}: a perturbed witness", kinds[i]);
            continue;
        }
        assert!(
            matches!(&r, Err(ZkError::Proof { instance: Some(named), .. }) if *named == expected),
            "{}: a perturbed witness gave {r:?}",
            kinds[i]
        );
    }
}

#[test]
fn a_perturbed_witness_in_each_instance_is_rejected_at_that_instance() {
    let (q, x) = every_instance_model();
    let prover = PrivateProver::new(q.clone()).unwrap();
    let kinds = [
        "input", "sponge", "linear", "relu", "mac", "maxpool", "requant", "table", "lookup", "softmax", "bytes",
        "output",
    ];
    perturb_each_instance(&prover, &q, &x, &kinds);
}

/// A range check by bytes holds only through the byte table: in every instance with byte columns, two adjacent
/// bytes of one witness rewritten to the same value with a non-byte low limb (`lo + 256`, `hi - 1`) satisfy every
/// constraint, and the proof is rejected because no table row provides the limb.
#[test]
fn a_limb_outside_the_byte_table_is_rejected() {
    let (q, x) = every_instance_model();
    let prover = PrivateProver::new(q.clone()).unwrap();
    let salt = Salt::random();
    let (y, honest) = prover.traces(&x, &salt).unwrap();
    let (s, input) = (public_structure(&q), commit_input(&x, &salt));
    let mut checked = vec![];
    for (i, air) in prover.airs.iter().enumerate() {
        let cols = air.inst.byte_columns();
        let width = honest[i].width();
        // A real row and two adjacent byte columns of one witness whose high byte can give one.
        let pair = (0..air.inst.height()).filter(|r| air.inst.reads_bytes(*r)).find_map(|r| {
            let row = &honest[i].values[r * width..(r + 1) * width];
            cols.windows(2).find(|w| w[1] == w[0] + 1 && row[w[1]] != Val::ZERO).map(|w| (r, w[0], w[1]))
        });
        let Some((r, lo, hi)) = pair else { continue };
        let mut traces = honest.clone();
        traces[i].values[r * width + lo] += Val::from_u64(256);
        traces[i].values[r * width + hi] -= Val::ONE;
        let (_, p) = prover.prove_traces(&y, &traces, &salt, &x).unwrap();
        let lookup = ZkError::Proof { reason: "Lookup(TerminalSumNonZero)".into(), instance: None };
        assert_eq!(verify_private(&s, prover.commitment(), &input, &y, &p), Err(lookup), "{}", kind(&air.inst));
        checked.push(kind(&air.inst));
    }
    for k in ["input", "linear", "requant", "maxpool", "softmax"] {
        assert!(checked.contains(&k), "no {k} instance with a two-byte witness: {checked:?}");
    }
}

#[test]
fn a_perturbed_witness_is_rejected_with_hidden_weights_too() {
    let (q, x) = hidden_weights_model();
    let prover = PrivateProver::with_hidden_weights(q.clone(), &Salt::random()).unwrap();
    let kinds = ["input", "sponge", "linear", "mac", "requant", "packed", "bytes", "params", "output"];
    perturb_each_instance(&prover, &q, &x, &kinds);
}

/// An older version's commitment and proof of `prover`'s model for input `x` (`prover` set up with that version's
/// layout): set up and proven under that version's configuration, as a receipt of that version carries them.
macro_rules! older_version {
    ($prover:expr, $x:expr, $version:expr, $cfg:ident) => {{
        let (prover, x) = (&$prover, $x);
        let (data, preprocessed) = setup_with!($cfg(Some(SETUP_SEED)), &prover.airs).unwrap();
        let c = PrivateCommitment { version: $version, preprocessed, ..prover.commitment().clone() };
        let salt = Salt::random();
        let (y, traces) = prover.traces(x, &salt).unwrap();
        let airs: Vec<PrivAir> = prover.airs.iter().map(|a| a.claiming(&y)).collect();
        let input = commit_input(x, &salt);
        let pvs = public_values(&airs, &input, None);
        let stark = prove_with!($cfg(None), &data, &airs, &traces, &pvs).unwrap();
        let security = private_security($version).unwrap();
        (c, PrivateProof { version: $version, security, input, stark }, y, salt)
    }};
}

/// Version-1 proofs (Poseidon2 Merkle commitments), version-2 proofs (Keccak, the public proofs' FRI parameters) and
/// version-3 proofs (version 4's parameters, linear layers laid out as they were) still verify: the same model set
/// up and proven under each older configuration and layout is accepted, with its commitment, as a receipt of that
/// version would carry them; a changed output is rejected; versions, parameters and system names must agree.
#[test]
fn older_versions_still_verify() {
    let (q, x) = every_instance_model();
    let prover = PrivateProver::new(q.clone()).unwrap();
    let legacy = PrivateProver::setup_layout(q.clone(), None, Layout::V1_V2).unwrap();
    let v3 = PrivateProver::setup_layout(q.clone(), None, Layout::V3).unwrap();
    // The every-instance model's conv (576 outputs) and dense layer (144 taps) are laid out differently since
    // version 4, so its version-3 instances are another batch.
    assert_ne!(prover.instances(), v3.instances());
    let s = public_structure(&q);
    let (c1, p1, y, _) = older_version!(legacy, &x, 1, hiding_config_v1);
    let (c2, p2, _, _) = older_version!(legacy, &x, 2, hiding_config_v2);
    let (c3, p3, _, salt) = older_version!(v3, &x, 3, hiding_config);
    let (_, p_now) = prover.prove(&x, &salt).unwrap();
    let c_now = prover.commitment();
    let older = [(1, &c1, &p1, PRIVATE_SYSTEM_V1), (2, &c2, &p2, PRIVATE_SYSTEM_V2), (3, &c3, &p3, PRIVATE_SYSTEM_V3)];
    for (version, c, p, system) in older {
        assert_eq!(verify_private(&s, c, &p.input, &y, p), Ok(()), "version {version}");
        let evidence = PrivateEvidence { structure: s.clone(), proof: p.clone() }.to_bytes();
        let c_bytes = PrivateCommitment::from_bytes(&c.to_bytes()).unwrap().to_bytes();
        assert_eq!(verify_private_evidence(system, &c_bytes, &evidence, &p.input, &y), Ok(()));
        // Another output.
        let mut y2 = y.clone();
        y2[0] = y2[0].wrapping_add(1);
        assert!(matches!(verify_private(&s, c, &p.input, &y2, p), Err(ZkError::Proof { .. })));
        // An older proof named as the current version, or checked against the current commitment: refused before
        // any check; and the current proof against the older commitment.
        assert!(matches!(
            verify_private_evidence(PRIVATE_SYSTEM, &c_bytes, &evidence, &p.input, &y),
            Err(ZkError::Header(_))
        ));
        assert!(matches!(verify_private(&s, c_now, &p.input, &y, p), Err(ZkError::Header(_))));
        assert!(matches!(verify_private(&s, c, &p_now.input, &y, &p_now), Err(ZkError::Header(_))));
    }
    assert_eq!(verify_private(&s, c_now, &p_now.input, &y, &p_now), Ok(()));
    // A version's proof must state that version's parameters: the current proof claiming version 2's is refused.
    let relabelled = PrivateProof { security: SECURITY, ..p_now.clone() };
    assert!(matches!(verify_private(&s, c_now, &p_now.input, &y, &relabelled), Err(ZkError::Header(_))));
    // An older proof relabelled as the current version (the current parameters stated, with its commitment
    // relabelled too) fails as a proof, not a panic: version 2's (other parameters) and version 3's (the same
    // parameters, other instances).
    for (c, p) in [(&c2, &p2), (&c3, &p3)] {
        let relabelled = PrivateProof { version: PRIVATE_VERSION, security: PRIVATE_SECURITY, ..p.clone() };
        let c_as_now = PrivateCommitment { version: PRIVATE_VERSION, ..c.clone() };
        assert!(matches!(verify_private(&s, &c_as_now, &p.input, &y, &relabelled), Err(ZkError::Proof { .. })));
    }
}

/// A serialized batch proof's per-instance openings and degree bits, under configuration `SC`.
fn opened<SC>(stark: &[u8]) -> (Vec<p3_batch_stark::proof::OpenedValuesWithLookups<crate::Challenge>>, Vec<usize>)
where
    SC: p3_uni_stark::StarkGenericConfig<Challenge = crate::Challenge>,
    BatchProof<SC>: serde::de::DeserializeOwned,
{
    let proof: BatchProof<SC> = postcard::from_bytes(stark).unwrap();
    (proof.opened_values.instances, proof.degree_bits)
}

/// The soundness of every private parameter set, by Plonky3 0.8's calculator on real batch proofs of one model: the
/// *conjectured* regime (random words; what the proof header's level and the docs claim) gives at least 100 bits for
/// every version, and so does the LogUp fingerprint; the *proven* regime (unique decoding or the Johnson bound,
/// round by round) is computed and printed for the docs, not claimed.
#[test]
fn plonky3_security_of_every_version() {
    use p3_uni_stark::{ConjecturedSecurity, OpeningShape, ProvenSecurity, StarkSecurityParams};
    let (q, x) = hidden_weights_model();
    let prover = PrivateProver::new(q.clone()).unwrap();
    let legacy = PrivateProver::setup_layout(q.clone(), None, Layout::V1_V2).unwrap();
    let v3 = PrivateProver::setup_layout(q, None, Layout::V3).unwrap();
    let (_, p2, _, _) = older_version!(legacy, &x, 2, hiding_config_v2);
    let (_, p3, _, _) = older_version!(v3, &x, 3, hiding_config);
    let (_, p4) = prover.prove(&x, &Salt::random()).unwrap();
    // (version, its instances, FRI parameters, random codewords, proof)
    let versions = [
        (2, &legacy.airs, crate::config::fri_parameters(()), 4, opened::<HidingConfigV2>(&p2.stark)),
        (3, &v3.airs, config::fri_parameters_v3(()), 2, opened::<HidingConfig>(&p3.stark)),
        (4, &prover.airs, config::fri_parameters_v3(()), 2, opened::<HidingConfig>(&p4.stark)),
    ];
    for (version, airs, fri, random_codewords, (opened, degree_bits)) in versions {
        let openings = OpeningShape::hiding(random_codewords);
        let (mut constraints, mut degree, mut batched, mut chunks, mut interactions, mut width) = (0, 0, 0, 0, 0, 0);
        for (air, o) in airs.iter().zip(&opened) {
            let layout = p3_uni_stark::AirLayout::from_air::<Val>(air);
            let sym = p3_lookup::InteractionSymbolicBuilder::<Val, crate::Challenge>::from_air(air, layout);
            let lookups = o.permutation_local.len().saturating_sub(1);
            // Each lookup column adds its fraction pin; the accumulator its first-row, transition and last-row rows.
            constraints += sym.base_constraints().len() + sym.extension_constraints().len() + lookups + 3;
            let n_chunks = o.base_opened_values.quotient_chunks.len();
            // 2^(log_chunks + zk) chunks hold constraints of degree up to 2^log_chunks + 1.
            degree = degree.max(n_chunks / 2 + 1);
            chunks = chunks.max(n_chunks);
            interactions += sym.global_interactions().len();
            width = sym.global_interactions().iter().map(|i| i.fields.len()).fold(width, usize::max);
            batched += p3_batch_stark::security::num_batched_openings(
                air.width(),
                true,
                air.preprocessed_width(),
                true,
                n_chunks,
                lookups,
                2,
                openings,
            );
        }
        let params = StarkSecurityParams::new(fri.security_regime(), 128, 128, constraints, degree, 2, batched, chunks)
            .with_grinding(fri.grinding_sites());
        let log_n = degree_bits.iter().copied().max().unwrap();
        let conjectured = ConjecturedSecurity::compute_from_params(&params, log_n).security_bits;
        let proven = ProvenSecurity::compute_from_proof(log_n, &params).security_bits();
        let shape = p3_security::shape::InstanceShape {
            log_trace_length: log_n,
            modulus_bits: 128,
            collision_resistance: 128,
            num_batched_functions: batched,
        };
        let logup = p3_security::logup::LogUpAir { num_interactions: interactions, max_message_width: width };
        let fingerprint = p3_security::logup::fingerprint_error(&logup, &shape).bits();
        eprintln!(
            "private v{version}: conjectured {conjectured} bits, proven {proven} bits, LogUp {fingerprint:.0} bits \
             ({constraints} constraints, degree {degree}, {batched} batched openings, 2^{log_n} rows)"
        );
        assert!(conjectured >= 100, "version {version}: {conjectured} conjectured bits");
        assert!(fingerprint >= 100.0, "version {version}: LogUp {fingerprint} bits");
    }
}

//! A model's public structure (the quantized graph without its linear parameters, which are committed instead): its
//! digest, the commitment decoder, and the bounds a verifier enforces on a structure before allocating anything.

use vouch_quant::{QGraph, QLayer};

use crate::config::PROOF_VERSION;
use crate::error::ZkError;

/// The model's public structure: the graph with the linear layers' weights, biases and multipliers removed
/// (they are committed instead). Shapes, scales, shifts, clamps, pooling and tables stay.
pub fn public_structure(g: &QGraph) -> QGraph {
    let mut s = g.clone();
    for l in &mut s.layers {
        if let QLayer::Dense { w, b, rq, .. } | QLayer::Conv { w, b, rq, .. } = l {
            w.clear();
            b.clear();
            let shift = rq.first().map(|r| r.shift).unwrap_or(0);
            *rq = vec![vouch_quant::Requant { mult: 0, shift }];
        }
    }
    s
}

pub(crate) fn structure_digest(structure: &QGraph) -> [u8; 32] {
    let bytes = postcard::to_allocvec(structure).expect("graphs serialize");
    *blake3::Hasher::new_derive_key("VOUCH_ZK_STRUCTURE_V1").update(&bytes).finalize().as_bytes()
}

/// Decodes a commitment and checks its format version.
pub(crate) fn decode_commitment<T: serde::de::DeserializeOwned>(
    b: &[u8],
    version: impl Fn(&T) -> u16,
) -> Result<T, ZkError> {
    let c: T = postcard::from_bytes(b).map_err(|e| ZkError::Commitment(e.to_string()))?;
    if version(&c) != PROOF_VERSION {
        return Err(ZkError::Header(format!("commitment version {}", version(&c))));
    }
    Ok(c)
}

/// Refuses a structure that is inconsistent or would make a verifier allocate without bound.
pub(crate) fn check_structure_limits(s: &QGraph) -> Result<(), ZkError> {
    if s.layers.len() + 1 != s.shapes.len() || s.scales.len() != s.shapes.len() {
        return Err(ZkError::Malformed("inconsistent structure".into()));
    }
    // Bound the work a hostile receipt can ask of a verifier before anything is allocated.
    let too_big = s.layers.len() > 256
        || s.shapes
            .iter()
            .any(|s| s.len() > 8 || s.iter().try_fold(1usize, |a, d| a.checked_mul(*d)).is_none_or(|n| n > 1 << 22));
    // Every linear layer's taps (outputs x taps per output) are materialized by the verifier: bound them too.
    let geo_ok = |g: &vouch_quant::Pool| {
        g.kernel.iter().all(|k| (1..=64).contains(k))
            && g.stride.iter().all(|k| (1..=64).contains(k))
            && g.pads.iter().all(|p| *p <= 64)
    };
    let taps_ok = s.layers.iter().zip(&s.shapes).all(|(l, shape)| {
        let n_in: usize = shape.iter().product();
        // outputs x taps per output, for a window layer with `per` taps per channel window
        let windows = |c: usize, geo: &vouch_quant::Pool, per: usize| {
            shape.len() == 4
                && geo_ok(geo)
                && geo.out_hw(shape[2], shape[3]).is_some_and(|(oh, ow)| {
                    c.checked_mul(oh * ow).and_then(|r| r.checked_mul(per)).is_some_and(|t| t <= 1 << 26)
                })
        };
        match l {
            QLayer::Dense { input, output, .. } => {
                *input == n_in && input.checked_mul(*output).is_some_and(|t| t <= 1 << 26)
            }
            QLayer::Conv { ic, oc, geo, .. } => {
                geo_ok(geo) && ic.checked_mul(geo.kernel[0] * geo.kernel[1]).is_some_and(|k| windows(*oc, geo, k))
            }
            QLayer::MaxPool(geo) | QLayer::AvgPool { geo, .. } => {
                geo_ok(geo) && windows(shape.get(1).copied().unwrap_or(0), geo, geo.kernel[0] * geo.kernel[1])
            }
            // Tables and constants the executor indexes: of the sizes it reads.
            QLayer::Lookup { table } => [vouch_quant::TABLE_BUCKETS, vouch_quant::TABLE_DIRECT].contains(&table.len()),
            QLayer::Softmax { exp } => exp.len() == vouch_quant::TABLE_DIRECT,
            QLayer::Affine { mul, add, .. } => mul.len() == n_in && add.len() == n_in,
            _ => true,
        }
    });
    if too_big || !taps_ok {
        return Err(ZkError::Malformed("structure exceeds the verifier's limits".into()));
    }
    Ok(())
}

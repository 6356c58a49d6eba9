//! Deterministic, stake-weighted executor selection.

use vouch_codec::tx::Address;
use vouch_codec::{Digest, domain};

/// Picks `k` distinct nodes from `candidates` (address, stake), each draw weighted by stake, from the
/// stream `blake3_derive_key(VOUCH_ASSIGN_V1, seed || job)`. Every node computes the same answer from the
/// same finalized seed. Returns fewer than `k` only when there are fewer candidates with stake.
pub fn select_executors(candidates: &[(Address, u64)], seed: &[u8; 32], job: &Digest, k: usize) -> Vec<Address> {
    let mut pool: Vec<(Address, u64)> = candidates.iter().filter(|(_, s)| *s > 0).copied().collect();
    pool.sort();
    let mut h = blake3::Hasher::new_derive_key(domain::ASSIGN);
    h.update(seed);
    h.update(&job.0);
    let mut xof = h.finalize_xof();
    let mut out = Vec::with_capacity(k);
    while out.len() < k && !pool.is_empty() {
        let total: u128 = pool.iter().map(|(_, s)| u128::from(*s)).sum();
        let mut b = [0u8; 16];
        xof.fill(&mut b);
        // 128 random bits modulo a total below 2^70: the bias is below 2^-58.
        let mut r = u128::from_le_bytes(b) % total;
        let ix = pool
            .iter()
            .position(|(_, s)| {
                if r < u128::from(*s) {
                    true
                } else {
                    r -= u128::from(*s);
                    false
                }
            })
            .expect("r < total");
        out.push(pool.remove(ix).0);
    }
    out
}

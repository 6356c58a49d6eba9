//! Choosing the next token from logits, deterministically: greedy breaks ties to the lowest token id; sampling
//! (temperature, nucleus) draws its uniform numbers from blake3 keyed by the request's digest and the step, so the
//! same request on the same logits picks the same tokens on every node. Probabilities are computed in f64 from the
//! f32 logits, in token-id order, with NaN logits treated as impossible.

use vouch_codec::Digest;

/// The index of the largest logit; ties (and an all-NaN row) go to the lowest id.
pub fn greedy(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    let mut seen = false;
    for (i, &v) in logits.iter().enumerate() {
        if v.is_nan() {
            continue;
        }
        if !seen || v > best_v {
            best = i;
            best_v = v;
            seen = true;
        }
    }
    best as u32
}

/// The uniform number in [0, 1) of `step` for the request with digest `request`.
pub fn uniform(request: &Digest, step: u32) -> f64 {
    let key = blake3::derive_key("VOUCH_LLM_SAMPLING_V1", &request.0);
    let h = blake3::keyed_hash(&key, &step.to_le_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    (u64::from_le_bytes(b) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Samples a token: logits divided by `temperature`, softmax, the smallest set of most likely tokens whose mass
/// reaches `top_p` (ordered by probability, ties by lowest id), then the token where the cumulative mass passes
/// `u * total`. `temperature` must be above 0.
pub fn sample(logits: &[f32], temperature: f64, top_p: f64, u: f64) -> u32 {
    let inv_t = 1.0 / temperature;
    let max = logits.iter().filter(|v| !v.is_nan()).fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    if !max.is_finite() {
        return greedy(logits);
    }
    let weight = |v: f32| if v.is_nan() { 0.0 } else { ((f64::from(v) - f64::from(max)) * inv_t).exp() };
    let total: f64 = logits.iter().map(|&v| weight(v)).sum();
    if top_p >= 1.0 {
        let target = u * total;
        let mut cum = 0.0;
        let mut last = 0u32;
        for (i, &v) in logits.iter().enumerate() {
            let w = weight(v);
            if w > 0.0 {
                cum += w;
                last = i as u32;
                if cum > target {
                    return i as u32;
                }
            }
        }
        return last;
    }
    // The nucleus: candidates above a threshold, lowered until they hold the mass asked for. Every token left out
    // weighs less than every token kept, so the kept ones, sorted, are the head of the full sorted order.
    let need = top_p * total;
    let mut kept: Vec<(u32, f64)> = vec![];
    for threshold in [1e-3, 1e-9, 0.0] {
        kept = logits
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as u32, weight(v)))
            .filter(|&(_, w)| w > 0.0 && w >= threshold)
            .collect();
        let mass: f64 = kept.iter().map(|&(_, w)| w).sum();
        if mass >= need {
            break;
        }
    }
    kept.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut cum = 0.0;
    let mut cut = kept.len();
    for (i, &(_, w)) in kept.iter().enumerate() {
        cum += w;
        if cum >= need {
            cut = i + 1;
            break;
        }
    }
    kept.truncate(cut.max(1));
    let nucleus: f64 = kept.iter().map(|&(_, w)| w).sum();
    let target = u * nucleus;
    let mut cum = 0.0;
    for &(id, w) in &kept {
        cum += w;
        if cum > target {
            return id;
        }
    }
    kept.last().map_or_else(|| greedy(logits), |&(id, _)| id)
}

/// Natural-log probabilities of the softmax of `logits` (NaN logits get `-inf`).
pub fn log_softmax(logits: &[f32]) -> impl Fn(u32) -> f64 + '_ {
    let max = logits.iter().filter(|v| !v.is_nan()).fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let max = f64::from(max);
    let lse = max + logits.iter().filter(|v| !v.is_nan()).map(|&v| (f64::from(v) - max).exp()).sum::<f64>().ln();
    move |t: u32| match logits.get(t as usize) {
        Some(v) if !v.is_nan() => f64::from(*v) - lse,
        _ => f64::NEG_INFINITY,
    }
}

/// The `k` most likely token ids, most likely first, ties by lowest id.
pub fn top_k(logits: &[f32], k: usize) -> Vec<u32> {
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    if k == 0 {
        return vec![];
    }
    for (i, &v) in logits.iter().enumerate() {
        if v.is_nan() {
            continue;
        }
        if best.len() == k && best.last().is_some_and(|&(_, w)| v <= w) {
            continue;
        }
        // Insert after every entry at least as large (so equal logits keep id order).
        let at = best.partition_point(|&(_, w)| w >= v);
        best.insert(at, (i as u32, v));
        best.truncate(k);
    }
    best.into_iter().map(|(i, _)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_ties_go_to_the_lowest_id() {
        assert_eq!(greedy(&[0.0, 2.0, 2.0, 1.0]), 1);
        assert_eq!(greedy(&[f32::NAN, 1.0, f32::NAN, 1.0]), 1);
        assert_eq!(greedy(&[f32::NAN, f32::NAN]), 0);
        assert_eq!(greedy(&[f32::NEG_INFINITY, f32::NEG_INFINITY, -1.0]), 2);
    }

    #[test]
    fn uniform_is_a_function_of_request_and_step() {
        let a = Digest([1; 32]);
        let b = Digest([2; 32]);
        assert_eq!(uniform(&a, 3), uniform(&a, 3));
        assert_ne!(uniform(&a, 3), uniform(&a, 4));
        assert_ne!(uniform(&a, 3), uniform(&b, 3));
        for s in 0..1000 {
            let u = uniform(&a, s);
            assert!((0.0..1.0).contains(&u));
        }
    }

    #[test]
    fn sampling_follows_the_distribution_and_the_nucleus() {
        let logits = [0.0f32, (3.0f32).ln(), f32::NAN, f32::NEG_INFINITY];
        // Probabilities 0.25, 0.75, 0, 0 at temperature 1.
        assert_eq!(sample(&logits, 1.0, 1.0, 0.0), 0);
        assert_eq!(sample(&logits, 1.0, 1.0, 0.2499), 0);
        assert_eq!(sample(&logits, 1.0, 1.0, 0.2501), 1);
        assert_eq!(sample(&logits, 1.0, 1.0, 0.9999), 1);
        // top_p 0.5: only token 1 (0.75 >= 0.5).
        for u in [0.0, 0.3, 0.99] {
            assert_eq!(sample(&logits, 1.0, 0.5, u), 1);
        }
        // Empirically: over many steps the frequency of token 1 is near 0.75.
        let d = Digest([7; 32]);
        let ones = (0..4000).filter(|&s| sample(&logits, 1.0, 1.0, uniform(&d, s)) == 1).count();
        assert!((2800..3200).contains(&ones), "{ones}");
        // A large vocabulary with a long tail: the nucleus search lowers its threshold until the mass is reached.
        let mut big = vec![-30.0f32; 50_000];
        big[123] = 5.0;
        assert_eq!(sample(&big, 1.0, 0.99, 0.5), 123);
    }

    #[test]
    fn log_probabilities_and_top_k() {
        let logits = [1.0f32, 3.0, 3.0, f32::NAN, 2.0];
        let lp = log_softmax(&logits);
        let total: f64 = (0..5).map(|t| lp(t).exp()).sum();
        assert!((total - 1.0).abs() < 1e-12);
        assert_eq!(lp(3), f64::NEG_INFINITY);
        assert_eq!(top_k(&logits, 3), vec![1, 2, 4]);
        assert_eq!(top_k(&logits, 0), Vec::<u32>::new());
        assert_eq!(top_k(&logits, 10), vec![1, 2, 4, 0]);
    }
}

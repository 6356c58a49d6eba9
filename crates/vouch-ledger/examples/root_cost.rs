//! What the state root costs as the state grows: `State::root()` (maintained incrementally, O(changes)) against
//! `State::root_from_scratch()` (every entry hashed again, O(state)), and the cost of folding in one change.
//!
//! `cargo run --release -p vouch-ledger --example root_cost`

use std::time::Instant;

use vouch_codec::Digest;
use vouch_ledger::{Genesis, Params, State};

fn ms(t: Instant, reps: u32) -> f64 {
    t.elapsed().as_secs_f64() * 1e3 / f64::from(reps)
}

fn main() {
    for n in [10_000usize, 100_000, 1_000_000] {
        let mut state = State::genesis(&Genesis { accounts: vec![], params: Params::default(), validators: vec![] });
        for i in 0..n {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&(i as u64).to_le_bytes());
            state.receipts.insert(Digest(id), ([1; 32], i as u64));
        }
        // Fold the inserts in (what the end of a block does).
        let t = Instant::now();
        state.end_block(0);
        let fold = ms(t, n as u32) * 1e3;
        let t = Instant::now();
        for _ in 0..100 {
            std::hint::black_box(state.root());
        }
        let incremental = ms(t, 100);
        let t = Instant::now();
        std::hint::black_box(state.root_from_scratch());
        let scratch = ms(t, 1);
        println!(
            "{n:>9} settled receipts: root() {incremental:.4} ms, root_from_scratch() {scratch:.1} ms, \
             {fold:.2} us per changed entry"
        );
    }
}

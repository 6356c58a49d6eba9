//! How long `State::root()` takes as the state grows (it re-encodes and hashes the whole state, once per block).
//!
//! `cargo run --release -p vouch-ledger --example root_cost`

use std::time::Instant;

use vouch_codec::Digest;
use vouch_ledger::{Genesis, Params, State};

fn main() {
    for n in [10_000usize, 100_000, 1_000_000] {
        let mut state = State::genesis(&Genesis { accounts: vec![], params: Params::default(), validators: vec![] });
        for i in 0..n {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&(i as u64).to_le_bytes());
            state.receipts.insert(Digest(id), ([1; 32], i as u64));
        }
        let t = Instant::now();
        let reps = 5;
        for _ in 0..reps {
            std::hint::black_box(state.root());
        }
        println!("{n} settled receipts: root() {:.1} ms", t.elapsed().as_secs_f64() * 1e3 / reps as f64);
    }
}

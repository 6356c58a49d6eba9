//! A commitment, in-circuit: one Poseidon2 permutation per row (`p3-poseidon2-air`), chained as an
//! overwrite-mode sponge over `[salt, iv(n)]` and then 4-lane groups looked up on a bus; the last absorbing row's
//! rate is a public commitment. Two kinds: the input's (groups on [`GROUP_BUS`], the public `C`) and, for a model
//! with hidden weights, the weights' (groups on [`PARAM_BUS`], the public weights commitment).

use p3_air::{Air, AirBuilder, WindowAccess};
use p3_field::PrimeCharacteristicRing;
use p3_goldilocks::GenericPoseidon2LinearLayersGoldilocks;
use p3_lookup::{Count, InteractionBuilder};
use p3_matrix::dense::RowMajorMatrix;
use p3_poseidon2_air::generate_trace_rows;

use crate::Val;
use crate::gadget::fe;
use crate::private::commit::{INPUT_TAG, P2_COLS, P2Air, WEIGHTS_TAG, p2_constants, sponge_iv, sponge_states};
use std::sync::Arc;

use crate::private::instance::{GROUP_BUS, Instance, SPONGE_BUS, WeightsLayout, Witness, blocks};

/// What a sponge commits.
#[derive(Clone, Debug)]
pub(crate) enum Commits {
    /// The private input.
    Input,
    /// The model's hidden weights, absorbed in this layout.
    Weights(Arc<WeightsLayout>),
}

/// The sponge instance.
#[derive(Clone)]
pub(crate) struct Sponge {
    /// Absorbed elements.
    pub n: usize,
    pub commits: Commits,
    /// The permutation's AIR.
    pub p2: Box<P2Air>,
}

impl Sponge {
    /// The sponge committing `n` elements of `commits`.
    pub fn new(n: usize, commits: Commits) -> Self {
        Self { n, commits, p2: Box::new(P2Air::new(p2_constants())) }
    }
    pub fn is_input(&self) -> bool {
        matches!(self.commits, Commits::Input)
    }
    fn bus(&self) -> &'static str {
        if self.is_input() { GROUP_BUS } else { SPONGE_BUS }
    }
    fn iv(&self) -> [Val; 4] {
        sponge_iv(self.n, if self.is_input() { INPUT_TAG } else { WEIGHTS_TAG })
    }
}

impl std::fmt::Debug for Sponge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sponge").field("n", &self.n).field("commits", &self.commits).finish()
    }
}

/// Main columns: the permutation's (`p3-poseidon2-air`): its input state first (rate `0..4`, capacity `4..8`), its
/// output state last.
struct Cols;

impl Cols {
    fn rate(j: usize) -> usize {
        j
    }
    fn capacity(j: usize) -> usize {
        4 + j
    }
    fn out(j: usize) -> usize {
        P2_COLS - 8 + j
    }
}

/// Preprocessed columns: first row, absorbing row, last absorbing row, the absorbed group's index.
struct Prep;

impl Prep {
    const FIRST: usize = 0;
    const ABSORB: usize = 1;
    const LAST: usize = 2;
    const GROUP: usize = 3;
    const WIDTH: usize = 4;
}

impl Instance for Sponge {
    fn describe(&self) -> String {
        let what = if self.is_input() { "input" } else { "weights" };
        format!("{what} commitment sponge, {} elements", self.n)
    }
    fn rows(&self) -> usize {
        blocks(self.n) + 1
    }
    fn width(&self) -> usize {
        P2_COLS
    }
    fn prep_width(&self) -> usize {
        Prep::WIDTH
    }
    fn next_row_columns(&self) -> (Vec<usize>, Vec<usize>) {
        ((0..4).map(Cols::capacity).collect(), vec![Prep::ABSORB])
    }
    fn preprocessed(&self, h: usize) -> Vec<Val> {
        let last = blocks(self.n);
        let mut v = Vec::with_capacity(h * Prep::WIDTH);
        for r in 0..h {
            let absorb = (1..=last).contains(&r);
            v.extend([r == 0, absorb, r == last].map(Val::from_bool));
            v.push(if absorb { Val::from_u64(r as u64 - 1) } else { Val::ZERO });
        }
        v
    }
    fn eval<AB: AirBuilder<F = Val> + InteractionBuilder>(&self, b: &mut AB) {
        self.p2.eval(b);
        let main = b.main();
        let (row, next): (Vec<AB::Var>, Vec<AB::Var>) = (main.current_slice().to_vec(), main.next_slice().to_vec());
        let prep = b.preprocessed();
        let (p, pn): (Vec<AB::Var>, Vec<AB::Var>) = (prep.current_slice().to_vec(), prep.next_slice().to_vec());
        let (first, absorb, last): (AB::Expr, AB::Expr, AB::Expr) =
            (p[Prep::FIRST].into(), p[Prep::ABSORB].into(), p[Prep::LAST].into());
        // The absorbed block is the committed vector's group (zero past its end).
        let msg: Vec<AB::Expr> =
            std::iter::once(p[Prep::GROUP].into()).chain((0..4).map(|j| row[Cols::rate(j)].into())).collect();
        b.push_interaction(self.bus(), msg, Count::bounded(absorb, 1));
        let pv: Vec<AB::Expr> = b.public_values().iter().map(|v| (*v).into()).collect();
        let iv = self.iv();
        for j in 0..4 {
            // The first permutation starts from [salt, iv].
            b.assert_zero(first.clone() * (row[Cols::capacity(j)].into() - AB::Expr::from(iv[j])));
            // Each absorbing row carries the previous row's capacity.
            b.assert_zero(pn[Prep::ABSORB].into() * (next[Cols::capacity(j)].into() - row[Cols::out(4 + j)].into()));
            // The commitment is the last absorbing row's rate.
            b.assert_zero(last.clone() * (row[Cols::out(j)].into() - pv[j].clone()));
        }
    }
    fn count_reads(&self, reads: &mut crate::private::instance::Reads) {
        // The weights' blocks are each provided once, for this sponge alone.
        if self.is_input() {
            reads.groups.iter_mut().for_each(|m| *m += 1);
        }
    }
    #[cfg(test)]
    fn proven_column(&self) -> usize {
        Cols::rate(0)
    }
    fn trace(&self, w: &Witness<'_>, h: usize) -> RowMajorMatrix<Val> {
        let (mut inputs, _) = match (&self.commits, w.params) {
            (Commits::Input, _) => {
                sponge_states(&w.x.iter().map(|v| fe(i64::from(*v))).collect::<Vec<_>>(), w.salt.elems(), self.iv())
            }
            (Commits::Weights(layout), Some((groups, salt))) => {
                sponge_states(layout.sponge_blocks(groups).as_flattened(), salt.elems(), self.iv())
            }
            (Commits::Weights(_), None) => (vec![], [Val::ZERO; 8]),
        };
        inputs.resize(h, [Val::ZERO; 8]);
        generate_trace_rows::<Val, GenericPoseidon2LinearLayersGoldilocks, 8, 7, 1, 4, 22>(inputs, &p2_constants(), 0)
    }
}

//! The AIR of one linear layer (Dense or Conv) in a public-activation proof: one trace row per output.
//!
//! - Preprocessed (committed once per model, the model's zk commitment): `w[0..K]`, `b`, `M` per row.
//! - Periodic (public, evaluated by the verifier): the row's input taps `x[0..K]` and its output `y`.
//! - Main: the [`Rq`] gadget.

use std::borrow::Cow;

use p3_air::{Air, AirBuilder, BaseAir, WindowAccess};
use p3_matrix::dense::RowMajorMatrix;

use crate::Val;
use crate::gadget::Rq;

/// Shape and public data of one layer's AIR.
#[derive(Clone, Debug)]
pub struct LayerAir {
    /// Taps per output.
    pub k: usize,
    /// The requantization gadget.
    pub rq: Rq,
    /// Periodic columns: `k` tap columns, then `y`.
    pub periodic: Vec<Vec<Val>>,
    /// Preprocessed rows (`w[0..k]`, `b`, `M`); `None` on the verifier's side.
    pub prep: Option<RowMajorMatrix<Val>>,
}

impl BaseAir<Val> for LayerAir {
    fn width(&self) -> usize {
        self.rq.cols(0).end
    }
    fn preprocessed_width(&self) -> usize {
        self.k + 2
    }
    fn preprocessed_trace(&self) -> Option<RowMajorMatrix<Val>> {
        self.prep.clone()
    }
    fn num_periodic_columns(&self) -> usize {
        self.periodic.len()
    }
    fn periodic_columns(&self) -> Cow<'_, [Vec<Val>]> {
        Cow::Borrowed(&self.periodic)
    }
    fn num_public_values(&self) -> usize {
        4
    }
    fn main_next_row_columns(&self) -> Vec<usize> {
        vec![]
    }
    fn preprocessed_next_row_columns(&self) -> Vec<usize> {
        vec![]
    }
}

impl<AB: AirBuilder<F = Val>> Air<AB> for LayerAir {
    fn eval(&self, b: &mut AB) {
        let main = b.main();
        let row: Vec<AB::Var> = main.current_slice().to_vec();
        let prep: Vec<AB::Var> = b.preprocessed().current_slice().to_vec();
        let per: Vec<AB::Expr> = b.periodic_values().iter().map(|p| (*p).into()).collect();

        // acc = b + sum w x
        let mut acc: AB::Expr = prep[self.k].into();
        for t in 0..self.k {
            acc += prep[t].into() * per[t].clone();
        }
        self.rq.eval(b, &row, 0, acc, prep[self.k + 1].into(), per[self.k].clone());
    }
}

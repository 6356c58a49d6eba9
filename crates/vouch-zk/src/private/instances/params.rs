//! Hidden weights, 4 per row: provides each group on [`PARAM_BUS`] with a hidden multiplicity, read by the layers
//! that use it and once by the weights' [`Sponge`](super::sponge::Sponge), which binds every group to the public
//! weights commitment. No range checks: the commitment fixes each value.

use p3_air::{AirBuilder, WindowAccess};
use p3_field::PrimeCharacteristicRing;
use p3_lookup::{Count, InteractionBuilder};
use p3_matrix::dense::RowMajorMatrix;

use crate::Val;
use crate::private::instance::{Instance, PARAM_BUS, Witness, zeros};

/// The hidden-weights instance.
#[derive(Clone, Debug)]
pub(crate) struct Params {
    /// Groups of 4 weights.
    pub groups: usize,
}

/// Main columns: the 4 lanes, the group's multiplicity.
struct Cols;

impl Cols {
    const MULT: usize = 4;
    const WIDTH: usize = 5;
}

impl Instance for Params {
    fn describe(&self) -> String {
        format!("hidden weights, {} groups of 4", self.groups)
    }
    fn rows(&self) -> usize {
        self.groups
    }
    fn width(&self) -> usize {
        Cols::WIDTH
    }
    fn prep_width(&self) -> usize {
        1
    }
    fn preprocessed(&self, h: usize) -> Vec<Val> {
        (0..h).map(|r| Val::from_u64(r as u64)).collect()
    }
    fn eval<AB: AirBuilder<F = Val> + InteractionBuilder>(&self, b: &mut AB) {
        let row: Vec<AB::Var> = b.main().current_slice().to_vec();
        let p: Vec<AB::Var> = b.preprocessed().current_slice().to_vec();
        // Rows past the last group provide groups nobody reads (no reader's key reaches them).
        let msg: Vec<AB::Expr> = std::iter::once(p[0].into()).chain((0..4).map(|j| row[j].into())).collect();
        b.push_interaction(PARAM_BUS, msg, Count::provided(-row[Cols::MULT].into()));
    }
    #[cfg(test)]
    fn proven_column(&self) -> usize {
        0
    }
    fn trace(&self, w: &Witness<'_>, h: usize) -> RowMajorMatrix<Val> {
        let mut v = zeros(h, Cols::WIDTH);
        if let Some((groups, _)) = w.params {
            for (r, row) in v.chunks_mut(Cols::WIDTH).enumerate().take(groups.len()) {
                row[..4].copy_from_slice(&groups[r]);
                row[Cols::MULT] = Val::from_u64(w.reads.params.get(r).copied().unwrap_or(0));
            }
        }
        RowMajorMatrix::new(v, Cols::WIDTH)
    }
}

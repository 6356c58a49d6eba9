//! The AIR of one instance of the batch: the instance (dispatched to its file) and, on the prover's side, its
//! preprocessed trace.

use std::borrow::Cow;

use p3_air::{Air, AirBuilder, BaseAir};
use p3_lookup::InteractionBuilder;
use p3_matrix::dense::RowMajorMatrix;

use super::instance::{Instance, Reads, Witness};
use super::instances::{
    Bytes, Input, Linear, Lookup, Mac, MaxPool, Output, Packed, Params, Relu, Requant, Softmax, Sponge, Table,
};
use crate::Val;

/// Every kind of instance.
#[derive(Clone, Debug)]
pub(crate) enum Inst {
    Input(Input),
    Sponge(Sponge),
    Linear(Linear),
    Relu(Relu),
    Mac(Mac),
    MaxPool(MaxPool),
    Requant(Requant),
    Table(Table),
    Lookup(Lookup),
    Softmax(Softmax),
    Params(Params),
    Packed(Packed),
    Bytes(Bytes),
    Output(Output),
}

/// Calls `$f` on the instance inside `$inst`, whatever its kind.
macro_rules! dispatch {
    ($inst:expr, $i:ident => $f:expr) => {
        match $inst {
            Inst::Input($i) => $f,
            Inst::Sponge($i) => $f,
            Inst::Linear($i) => $f,
            Inst::Relu($i) => $f,
            Inst::Mac($i) => $f,
            Inst::MaxPool($i) => $f,
            Inst::Requant($i) => $f,
            Inst::Table($i) => $f,
            Inst::Lookup($i) => $f,
            Inst::Softmax($i) => $f,
            Inst::Params($i) => $f,
            Inst::Packed($i) => $f,
            Inst::Bytes($i) => $f,
            Inst::Output($i) => $f,
        }
    };
}

impl Inst {
    pub fn describe(&self) -> String {
        dispatch!(self, i => i.describe())
    }
    pub fn height(&self) -> usize {
        super::instance::height(dispatch!(self, i => i.rows()))
    }
    pub fn count_reads(&self, reads: &mut Reads) {
        dispatch!(self, i => i.count_reads(reads))
    }
    pub fn provides(&self) -> Option<usize> {
        dispatch!(self, i => i.provides())
    }
    #[cfg(test)]
    pub fn byte_columns(&self) -> Vec<usize> {
        dispatch!(self, i => i.byte_columns())
    }
    #[cfg(test)]
    pub fn reads_bytes(&self, r: usize) -> bool {
        dispatch!(self, i => i.reads_bytes(r))
    }
    /// Adds the bytes this instance looked up in its trace `t` to the byte table's multiplicities.
    pub fn count_trace_bytes(&self, t: &RowMajorMatrix<Val>, bytes: &mut [u64]) {
        dispatch!(self, i => super::instance::count_trace_bytes(i, t, bytes))
    }
    pub fn trace(&self, w: &Witness<'_>) -> RowMajorMatrix<Val> {
        let h = self.height();
        dispatch!(self, i => i.trace(w, h))
    }
    fn width(&self) -> usize {
        dispatch!(self, i => i.width())
    }
    #[cfg(test)]
    pub fn proven_column(&self) -> usize {
        dispatch!(self, i => i.proven_column())
    }
    fn prep_width(&self) -> usize {
        dispatch!(self, i => i.prep_width())
    }
    fn next_row_columns(&self) -> (Vec<usize>, Vec<usize>) {
        dispatch!(self, i => i.next_row_columns())
    }
}

/// One instance of the batch.
#[derive(Clone, Debug)]
pub struct PrivAir {
    pub(crate) inst: Inst,
    /// Preprocessed trace (the prover's side only).
    pub(crate) prep: Option<RowMajorMatrix<Val>>,
}

impl PrivAir {
    /// This AIR with its preprocessed trace (for the setup commitment and the prover).
    pub(crate) fn with_preprocessed(&self) -> Self {
        let h = self.inst.height();
        let values = dispatch!(&self.inst, i => i.preprocessed(h));
        Self { inst: self.inst.clone(), prep: Some(RowMajorMatrix::new(values, self.inst.prep_width())) }
    }

    /// This AIR claiming output `y` (only the output instance changes).
    pub(crate) fn claiming(&self, y: &[i16]) -> Self {
        match &self.inst {
            Inst::Output(o) => Self { inst: Inst::Output(o.claim(y)), prep: self.prep.clone() },
            _ => self.clone(),
        }
    }
}

impl BaseAir<Val> for PrivAir {
    fn width(&self) -> usize {
        self.inst.width()
    }
    fn preprocessed_width(&self) -> usize {
        self.inst.prep_width()
    }
    fn preprocessed_trace(&self) -> Option<RowMajorMatrix<Val>> {
        self.prep.clone()
    }
    fn num_public_values(&self) -> usize {
        // A sponge's public values are its commitment (the input's, or the hidden weights').
        if matches!(self.inst, Inst::Sponge(_)) { 4 } else { 0 }
    }
    fn num_periodic_columns(&self) -> usize {
        if let Inst::Output(o) = &self.inst { o.claimed.len() } else { 0 }
    }
    fn periodic_columns(&self) -> Cow<'_, [Vec<Val>]> {
        match &self.inst {
            Inst::Output(o) => Cow::Borrowed(&o.claimed),
            _ => Cow::Owned(vec![]),
        }
    }
    fn main_next_row_columns(&self) -> Vec<usize> {
        self.inst.next_row_columns().0
    }
    fn preprocessed_next_row_columns(&self) -> Vec<usize> {
        self.inst.next_row_columns().1
    }
}

impl<AB: AirBuilder<F = Val> + InteractionBuilder> Air<AB> for PrivAir {
    fn eval(&self, b: &mut AB) {
        dispatch!(&self.inst, i => i.eval(b))
    }
}

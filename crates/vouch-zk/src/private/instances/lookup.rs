//! Table layers. A [`Table`] instance provides every `(key, value)` pair of a layer's table from preprocessed columns
//! (bound by the model's commitment) with a hidden multiplicity. For Sigmoid and Tanh (`y = table[x + 32767]`) a
//! [`Lookup`] instance, one row per element, reads `x` from its input bus, looks `(x, y)` up in the table (LogUp) and
//! provides `y` on its output bus; every activation is already in `[-32767, 32767]` (each producer proves it), so
//! every read hits a table row. Softmax reads its exp table the same way (`instances/softmax.rs`).

use std::sync::Arc;

use p3_air::{AirBuilder, WindowAccess};
use p3_field::PrimeCharacteristicRing;
use p3_lookup::{Count, InteractionBuilder};
use p3_matrix::dense::RowMajorMatrix;

use crate::Val;
use crate::gadget::{QMAX, fe};
use crate::private::instance::{Instance, Reads, Witness, bus, element_rows, read_each, zeros};

/// Entries of a table: one per activation value (or per gap `max - x` of a softmax row).
pub(crate) const ENTRIES: usize = 2 * QMAX as usize + 1;

/// The bus of graph layer `layer`'s table: `(key, value)`.
pub(crate) fn table_bus(layer: usize) -> String {
    format!("t{layer}")
}

/// Which key each element of the layer's input reads.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Keys {
    /// The element itself (`x`, keys from -32767).
    Elements,
    /// Softmax over rows of `last` elements: the gap `max(row) - x` (keys from 0).
    SoftmaxGaps {
        /// Elements per row.
        last: usize,
    },
}

impl Keys {
    /// The first key (row 0's).
    fn first(self) -> i64 {
        match self {
            Self::Elements => -QMAX,
            Self::SoftmaxGaps { .. } => 0,
        }
    }
}

/// The table of graph layer `layer`.
#[derive(Clone, Debug)]
pub(crate) struct Table {
    pub layer: usize,
    /// The value of key `first + r` at row `r`, [`ENTRIES`] of them.
    pub values: Arc<Vec<i64>>,
    pub keys: Keys,
    /// The bus the layer reads its input from, and its element count (what the multiplicities are counted from).
    pub bus_in: usize,
    pub n: usize,
}

impl Table {
    /// Row `r`'s entry (the row past the last entry repeats the first).
    fn entry(r: usize) -> usize {
        if r < ENTRIES { r } else { 0 }
    }
}

/// Main column: the multiplicity. Preprocessed: the key, its value.
const T_MULT: usize = 0;
const T_KEY: usize = 0;
const T_VALUE: usize = 1;

impl Instance for Table {
    fn describe(&self) -> String {
        let kind = if matches!(self.keys, Keys::Elements) { "table" } else { "exp table" };
        format!("{kind}, layer {}, {ENTRIES} entries", self.layer)
    }
    fn rows(&self) -> usize {
        ENTRIES
    }
    fn width(&self) -> usize {
        1
    }
    fn prep_width(&self) -> usize {
        2
    }
    fn preprocessed(&self, h: usize) -> Vec<Val> {
        (0..h)
            .flat_map(|r| {
                let e = Self::entry(r);
                [fe(e as i64 + self.keys.first()), fe(self.values.get(e).copied().unwrap_or(0))]
            })
            .collect()
    }
    fn eval<AB: AirBuilder<F = Val> + InteractionBuilder>(&self, b: &mut AB) {
        let row: Vec<AB::Var> = b.main().current_slice().to_vec();
        let p: Vec<AB::Var> = b.preprocessed().current_slice().to_vec();
        let msg = [p[T_KEY].into(), p[T_VALUE].into()];
        b.push_interaction(&table_bus(self.layer), msg, Count::provided(-row[T_MULT].into()));
    }
    #[cfg(test)]
    fn proven_column(&self) -> usize {
        T_MULT
    }
    fn trace(&self, w: &Witness<'_>, h: usize) -> RowMajorMatrix<Val> {
        let mut counts = vec![0u64; h];
        let xs = &w.buses[self.bus_in][..self.n];
        match self.keys {
            Keys::Elements => xs.iter().for_each(|x| counts[(i64::from(*x) + QMAX) as usize] += 1),
            Keys::SoftmaxGaps { last } => {
                for row in xs.chunks(last.max(1)) {
                    let m = row.iter().copied().max().unwrap_or(0);
                    row.iter().for_each(|x| counts[(i32::from(m) - i32::from(*x)) as usize] += 1);
                }
            }
        }
        RowMajorMatrix::new(counts.into_iter().map(Val::from_u64).collect(), 1)
    }
}

/// The lookup of graph layer `layer`.
#[derive(Clone, Debug)]
pub(crate) struct Lookup {
    pub layer: usize,
    pub n: usize,
    pub bus_in: usize,
    pub bus_out: usize,
}

/// Main columns: `x`, `y`, the multiplicity of `y`. Preprocessed: the element index, whether the row is an element.
const L_X: usize = 0;
const L_Y: usize = 1;
const L_MULT: usize = 2;
const L_INDEX: usize = 0;
const L_REAL: usize = 1;

impl Instance for Lookup {
    fn describe(&self) -> String {
        format!("lookup, layer {}, {} elements", self.layer, self.n)
    }
    fn rows(&self) -> usize {
        self.n
    }
    fn width(&self) -> usize {
        3
    }
    fn prep_width(&self) -> usize {
        2
    }
    fn preprocessed(&self, h: usize) -> Vec<Val> {
        element_rows(h, self.n)
    }
    fn eval<AB: AirBuilder<F = Val> + InteractionBuilder>(&self, b: &mut AB) {
        let row: Vec<AB::Var> = b.main().current_slice().to_vec();
        let p: Vec<AB::Var> = b.preprocessed().current_slice().to_vec();
        let (x, y): (AB::Expr, AB::Expr) = (row[L_X].into(), row[L_Y].into());
        let (idx, real): (AB::Expr, AB::Expr) = (p[L_INDEX].into(), p[L_REAL].into());
        b.push_interaction(&bus(self.bus_in), [idx.clone(), x.clone()], Count::bounded(real.clone(), 1));
        b.push_interaction(&table_bus(self.layer), [x, y.clone()], Count::bounded(real, 1));
        b.push_interaction(&bus(self.bus_out), [idx, y], Count::provided(-row[L_MULT].into()));
    }
    fn count_reads(&self, reads: &mut Reads) {
        read_each(reads, self.bus_in, self.n);
    }
    fn provides(&self) -> Option<usize> {
        Some(self.layer)
    }
    #[cfg(test)]
    fn proven_column(&self) -> usize {
        L_Y
    }
    fn trace(&self, w: &Witness<'_>, h: usize) -> RowMajorMatrix<Val> {
        let mut v = zeros(h, 3);
        for (r, row) in v.chunks_mut(3).enumerate().take(self.n) {
            row[L_X] = fe(i64::from(w.buses[self.bus_in][r]));
            row[L_Y] = fe(i64::from(w.buses[self.bus_out][r]));
            row[L_MULT] = Val::from_u64(w.reads.bus[self.bus_out][r]);
        }
        RowMajorMatrix::new(v, 3)
    }
}

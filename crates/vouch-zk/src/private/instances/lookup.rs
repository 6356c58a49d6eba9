//! Table layers. A [`Table`] instance provides every `(key, value)` pair of a layer's table from preprocessed columns
//! (bound by the model's commitment) with a hidden multiplicity, 16 entries per trace row. For Sigmoid and Tanh (`y = table[(x + 32767) >> 4]`,
//! or `table[x + 32767]` for a direct table) a [`Lookup`] instance, one row per element, reads `x` from its input bus,
//! splits `x + 32767 = 16 i + r` (`r` in 4 bits; the bucket `i` is then the key), looks `(key, y)` up in the table
//! (LogUp) and provides `y` on its output bus; every activation is already in `[-32767, 32767]` (each producer
//! proves it), so every read hits a table row. Softmax reads its exp table the same way (`instances/softmax.rs`).

use std::sync::Arc;

use p3_air::{AirBuilder, WindowAccess};
use p3_field::PrimeCharacteristicRing;
use p3_lookup::{Count, InteractionBuilder};
use p3_matrix::dense::RowMajorMatrix;

use crate::Val;
use crate::gadget::{QMAX, bits, fe, put_bits};
use crate::private::instance::{Instance, Reads, Witness, bus, element_rows, read_each, zeros};

/// Entries of a direct table: one per activation value (or per gap `max - x` of a softmax row).
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
    /// The element's bucket `(x + 32767) >> 4` (keys from 0).
    Buckets,
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
            Self::Buckets | Self::SoftmaxGaps { .. } => 0,
        }
    }
}

/// The table of graph layer `layer`.
#[derive(Clone, Debug)]
pub(crate) struct Table {
    pub layer: usize,
    /// The value of key `first + r` at row `r`.
    pub values: Arc<Vec<i64>>,
    pub keys: Keys,
    /// The bus the layer reads its input from, and its element count (what the multiplicities are counted from).
    pub bus_in: usize,
    pub n: usize,
    /// Entries per trace row (16; 1 in versions 1-2). What a table costs grows with its rows, not its entries:
    /// every committed row is at least one leaf hash at each point of its blowup, and the DFTs and the quotient
    /// domain scale with the height. At one entry per row a 65,535-entry table was 2^20 leaves per committed matrix;
    /// at 16 it is 4,096 rows.
    pub lanes: usize,
}

impl Table {
    /// Entry slot `s`'s entry (slots past the last entry repeat the first, with multiplicity zero).
    fn entry(&self, s: usize) -> usize {
        if s < self.values.len() { s } else { 0 }
    }
}

/// Main columns: the multiplicity of each of the row's `lanes` entries (slot `lanes * r + j` in column `j`).
/// Preprocessed: each slot's key and value.
fn t_key(j: usize) -> usize {
    2 * j
}
fn t_value(j: usize) -> usize {
    2 * j + 1
}

impl Instance for Table {
    fn describe(&self) -> String {
        let kind = if matches!(self.keys, Keys::SoftmaxGaps { .. }) { "exp table" } else { "table" };
        format!("{kind}, layer {}, {} entries", self.layer, self.values.len())
    }
    fn rows(&self) -> usize {
        self.values.len().div_ceil(self.lanes)
    }
    fn width(&self) -> usize {
        self.lanes
    }
    fn prep_width(&self) -> usize {
        2 * self.lanes
    }
    fn preprocessed(&self, h: usize) -> Vec<Val> {
        (0..h * self.lanes)
            .flat_map(|s| {
                let e = self.entry(s);
                [fe(e as i64 + self.keys.first()), fe(self.values.get(e).copied().unwrap_or(0))]
            })
            .collect()
    }
    fn eval<AB: AirBuilder<F = Val> + InteractionBuilder>(&self, b: &mut AB) {
        let row: Vec<AB::Var> = b.main().current_slice().to_vec();
        let p: Vec<AB::Var> = b.preprocessed().current_slice().to_vec();
        for (j, m) in row.iter().enumerate() {
            let msg = [p[t_key(j)].into(), p[t_value(j)].into()];
            b.push_interaction(&table_bus(self.layer), msg, Count::provided(-(*m).into()));
        }
    }
    #[cfg(test)]
    fn proven_column(&self) -> usize {
        0
    }
    fn trace(&self, w: &Witness<'_>, h: usize) -> RowMajorMatrix<Val> {
        let mut counts = vec![0u64; h * self.lanes];
        let xs = &w.buses[self.bus_in][..self.n];
        match self.keys {
            Keys::Elements => xs.iter().for_each(|x| counts[(i64::from(*x) + QMAX) as usize] += 1),
            Keys::Buckets => {
                xs.iter().for_each(|x| counts[((i64::from(*x) + QMAX) >> vouch_quant::TABLE_SHIFT) as usize] += 1)
            }
            Keys::SoftmaxGaps { last } => {
                for row in xs.chunks(last.max(1)) {
                    let m = row.iter().copied().max().unwrap_or(0);
                    row.iter().for_each(|x| counts[(i32::from(m) - i32::from(*x)) as usize] += 1);
                }
            }
        }
        RowMajorMatrix::new(counts.into_iter().map(Val::from_u64).collect(), self.lanes)
    }
}

/// The lookup of graph layer `layer`.
#[derive(Clone, Debug)]
pub(crate) struct Lookup {
    pub layer: usize,
    pub n: usize,
    pub bus_in: usize,
    pub bus_out: usize,
    /// Activation bits the table's key drops (0: a direct table keyed by `x`).
    pub shift: u32,
}

/// Main columns: `x`, `y`, the multiplicity of `y`, then (bucketed) the bucket `i` and `shift` bits of `r`.
/// Preprocessed: the element index, whether the row is an element.
const L_X: usize = 0;
const L_Y: usize = 1;
const L_MULT: usize = 2;
const L_BUCKET: usize = 3;
const L_R: usize = 4;

impl Lookup {
    fn bucketed(&self) -> bool {
        self.shift > 0
    }
}

impl Instance for Lookup {
    fn describe(&self) -> String {
        format!("lookup, layer {}, {} elements", self.layer, self.n)
    }
    fn rows(&self) -> usize {
        self.n
    }
    fn width(&self) -> usize {
        if self.bucketed() { L_R + self.shift as usize } else { 3 }
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
        let (idx, real): (AB::Expr, AB::Expr) = (p[0].into(), p[1].into());
        let key = if self.bucketed() {
            // x + 32767 = 2^shift i + r, r < 2^shift: the table's keys bound i, so this is the integer split.
            let bucket: AB::Expr = row[L_BUCKET].into();
            let r = bits(b, &row, L_R, self.shift as usize);
            let scale = AB::Expr::from(fe(1i64 << self.shift));
            b.assert_eq(x.clone() + AB::Expr::from(fe(QMAX)), bucket.clone() * scale + r);
            bucket
        } else {
            x.clone()
        };
        b.push_interaction(&bus(self.bus_in), [idx.clone(), x], Count::bounded(real.clone(), 1));
        b.push_interaction(&table_bus(self.layer), [key, y.clone()], Count::bounded(real, 1));
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
        let width = self.width();
        let mut v = zeros(h, width);
        for (r, row) in v.chunks_mut(width).enumerate() {
            let (x, y) = if r < self.n { (w.buses[self.bus_in][r], w.buses[self.bus_out][r]) } else { (0, 0) };
            row[L_X] = fe(i64::from(x));
            row[L_Y] = fe(i64::from(y));
            if r < self.n {
                row[L_MULT] = Val::from_u64(w.reads.bus[self.bus_out][r]);
            }
            if self.bucketed() {
                // Padding rows (x = 0) split too: the constraint holds on every row.
                let k = i64::from(x) + QMAX;
                row[L_BUCKET] = fe(k >> self.shift);
                put_bits(row, L_R, self.shift as usize, (k & ((1 << self.shift) - 1)) as u128);
            }
        }
        RowMajorMatrix::new(v, width)
    }
}

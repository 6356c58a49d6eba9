//! What every instance of the batch is: the [`Instance`] trait (its shape, preprocessed columns, constraints and bus
//! interactions, trace), the witness traces are generated from, and the buses that link instances.
//!
//! Buses carry `(index, value)` messages: bus `a{b}` holds activation `b` (the input is `a0`), `a0g` the input's
//! 4-lane groups `(group, x[4g..4g+4])`, `c{b}` the accumulators of a chunked linear layer `(output, acc)`. The
//! instance producing a bus provides each element with a hidden multiplicity (how often it is read); readers look
//! their taps up.

use p3_air::AirBuilder;
use p3_lookup::{Count, InteractionBuilder};
use p3_matrix::dense::RowMajorMatrix;

use super::commit::Salt;
use super::config::MIN_HEIGHT;
use crate::Val;
use crate::gadget::Range;

/// One instance of the batch STARK.
pub(crate) trait Instance {
    /// What it proves, for errors and logs.
    fn describe(&self) -> String;
    /// Trace rows it uses (the trace is [`height`] of this).
    fn rows(&self) -> usize;
    /// Main trace width.
    fn width(&self) -> usize;
    /// Preprocessed width.
    fn prep_width(&self) -> usize;
    /// The preprocessed columns (public: committed once per model), `h` rows, row-major.
    fn preprocessed(&self, h: usize) -> Vec<Val>;
    /// Main and preprocessed columns also read on the next row.
    fn next_row_columns(&self) -> (Vec<usize>, Vec<usize>) {
        (vec![], vec![])
    }
    /// Constraints and bus interactions.
    fn eval<AB: AirBuilder<F = Val> + InteractionBuilder>(&self, b: &mut AB);
    /// Counts the bus elements it reads.
    fn count_reads(&self, _reads: &mut Reads) {}
    /// Main columns holding a byte looked up on [`BYTE_BUS`] (see [`range_check`]) on every row that
    /// [`reads_bytes`](Self::reads_bytes): the byte table's multiplicities count their values once the trace exists.
    fn byte_columns(&self) -> Vec<usize> {
        vec![]
    }
    /// Whether row `r` looks its byte columns up (by default, the first [`rows`](Self::rows) rows).
    fn reads_bytes(&self, r: usize) -> bool {
        r < self.rows()
    }
    /// The graph layer whose output this instance provides on its bus, if it provides one.
    fn provides(&self) -> Option<usize> {
        None
    }
    /// The main trace, `h` rows.
    fn trace(&self, w: &Witness<'_>, h: usize) -> RowMajorMatrix<Val>;
    /// The main column holding what the instance proves on a row (its output `y`, the input lane, the running sum,
    /// the permutation's input): what the negative tests perturb.
    #[cfg(test)]
    fn proven_column(&self) -> usize;
}

/// The trace height for `rows` rows: a power of two, at least [`MIN_HEIGHT`].
pub(crate) fn height(rows: usize) -> usize {
    rows.next_power_of_two().max(MIN_HEIGHT)
}

/// Rows of 4 input lanes for `n` elements.
pub(crate) fn blocks(n: usize) -> usize {
    n.div_ceil(4)
}

/// Activation bus `b`.
pub(crate) fn bus(b: usize) -> String {
    format!("a{b}")
}

/// The accumulators of the chunked linear layer providing bus `b`: `(output, acc)`.
pub(crate) fn acc_bus(b: usize) -> String {
    format!("c{b}")
}

/// The input's 4-lane groups: `(group index, x[4g..4g+4])`.
pub(crate) const GROUP_BUS: &str = "a0g";

/// Hidden weights, 4 per message: `(group index, p[4g..4g+4])` (see [`Pw`]).
pub(crate) const PARAM_BUS: &str = "pw";

/// What the weights sponge absorbs: `(block index, 4 elements)` (see [`WeightsLayout`]).
pub(crate) const SPONGE_BUS: &str = "ps";

/// Bytes: `(u)` for `u` in `0..256`, provided by the byte table.
pub(crate) const BYTE_BUS: &str = "b8";

/// Int8 weights packed into one field element.
pub(crate) const PACK: usize = 7;

/// How the hidden parameter groups reach the weights sponge, one 4-element block per permutation: first `packed`
/// rows of 7 int8 weight groups (28 weights, packed 7 to an element as `sum (w_i + 128) 256^i`, so 4 elements), then
/// each of the `plain` groups as it is (biases and multipliers; every group of a model with int16 weights).
#[derive(Clone, Debug, Default)]
pub(crate) struct WeightsLayout {
    pub packed: Vec<[Option<usize>; PACK]>,
    pub plain: Vec<usize>,
}

impl WeightsLayout {
    /// Blocks the sponge absorbs.
    pub fn blocks(&self) -> usize {
        self.packed.len() + self.plain.len()
    }
    /// The 28 weights of packed row `r` (an empty slot is 4 zeros).
    pub fn packed_weights(&self, r: usize, groups: &[[Val; 4]]) -> [Val; 4 * PACK] {
        use p3_field::PrimeCharacteristicRing as _;
        let mut w = [Val::ZERO; 4 * PACK];
        for (l, g) in self.packed[r].iter().enumerate() {
            if let Some(g) = g.and_then(|g| groups.get(g)) {
                w[4 * l..4 * l + 4].copy_from_slice(g);
            }
        }
        w
    }
    /// The 4 packed elements of 28 weights: element `j` packs `w[7j..7j+7]`.
    pub fn pack(w: &[Val; 4 * PACK]) -> [Val; 4] {
        use p3_field::PrimeCharacteristicRing as _;
        std::array::from_fn(|j| {
            (0..PACK).rev().fold(Val::ZERO, |acc, i| acc * Val::from_u64(256) + w[PACK * j + i] + Val::from_u64(128))
        })
    }
    /// Every block, in the order the sponge absorbs them.
    pub fn sponge_blocks(&self, groups: &[[Val; 4]]) -> Vec<[Val; 4]> {
        let packed = (0..self.packed.len()).map(|r| Self::pack(&self.packed_weights(r, groups)));
        packed.chain(self.plain.iter().map(|g| groups[*g])).collect()
    }
}

/// Where a layer with hidden weights reads them on [`PARAM_BUS`]. The layer's parameters are `wrows` weight rows
/// (a Dense layer's outputs, a Conv's output channels) of `slots` weights (a multiple of 4; zero past the layer's
/// taps), from group `base`, then one group `[bias, multiplier, 0, 0]` per weight row. Trace row `r` uses weight
/// row `r / per` (a Conv's output positions share their channel's weights).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pw {
    pub base: usize,
    pub slots: usize,
    pub per: usize,
    pub wrows: usize,
}

impl Pw {
    /// Group `l` of trace row `r`'s weights.
    pub fn group(&self, r: usize, l: usize) -> usize {
        self.base + (r / self.per) * (self.slots / 4) + l
    }
    /// The `[bias, multiplier, 0, 0]` group of trace row `r`.
    pub fn bm_group(&self, r: usize) -> usize {
        self.base + self.wrows * self.slots / 4 + r / self.per
    }
    /// Groups of the layer.
    pub fn groups(&self) -> usize {
        self.wrows * (self.slots / 4 + 1)
    }
    /// The layer's parameter groups, in group order, from its rows.
    pub fn values(&self, lr: &crate::rows::LinearRows) -> Vec<[i64; 4]> {
        let w = |r: usize, s: usize| if s < lr.k { lr.w.get(r * lr.k + s).copied().unwrap_or(0) } else { 0 };
        let rows = (0..self.wrows).map(|j| j * self.per);
        let weights =
            rows.clone().flat_map(|r| (0..self.slots / 4).map(move |l| std::array::from_fn(|i| w(r, 4 * l + i))));
        let bm = rows.map(|r| [lr.bias.get(r).copied().unwrap_or(0), lr.mult.get(r).copied().unwrap_or(0), 0, 0]);
        weights.chain(bm).collect()
    }
}

/// How often each element of each bus is read (the providers' multiplicities).
pub(crate) struct Reads {
    /// Per activation bus, per element.
    pub bus: Vec<Vec<u64>>,
    /// Per input group.
    pub groups: Vec<u64>,
    /// Per hidden-weight group.
    pub params: Vec<u64>,
    /// Per byte value (the byte table's multiplicities).
    pub bytes: Vec<u64>,
}

/// What the traces are generated from.
pub(crate) struct Witness<'a> {
    /// Every activation bus's values, in bus order (the input first).
    pub buses: Vec<&'a [i16]>,
    /// Reads of every bus element.
    pub reads: Reads,
    /// The input.
    pub x: &'a [i16],
    /// The commitment's salt.
    pub salt: &'a Salt,
    /// Hidden weights: their groups (the [`PARAM_BUS`] order) and their commitment's salt.
    pub params: Option<(&'a [[Val; 4]], &'a Salt)>,
}

/// The preprocessed columns of an instance with one row per element of `n`: the element index, whether the row is
/// an element.
pub(crate) fn element_rows(h: usize, n: usize) -> Vec<Val> {
    use p3_field::PrimeCharacteristicRing as _;
    (0..h).flat_map(|r| [Val::from_u64(r as u64), Val::from_bool(r < n)]).collect()
}

/// Counts one read of each of the first `n` elements of bus `b`.
pub(crate) fn read_each(reads: &mut Reads, b: usize, n: usize) {
    reads.bus[b][..n].iter_mut().for_each(|m| *m += 1);
}

/// How a proof version lays its instances out. Version 3 range-checks witnesses with bytes looked up in the byte
/// table and puts 16 table entries on a trace row; versions 1 and 2 decomposed witnesses into bits and put one
/// entry on a row. Version 4 also reshapes linear layers (`plan::split_taps`, `plan::split_rows`): a layer with
/// many taps per output becomes narrow rows of at most `row_taps` taps, and one whose outputs just pass a power of
/// two is proven by two instances, so that its trace is not mostly padding. Older layouts are kept so that their
/// proofs still verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub range: Range,
    pub table_lanes: usize,
    /// Most taps on a row of a split linear layer (`None`: versions 1-3, which split only past
    /// [`CHUNK`](super::plan::CHUNK) taps).
    pub row_taps: Option<usize>,
    /// Whether a linear layer's outputs are split at a power of two (version 4).
    pub split_rows: bool,
}

impl Layout {
    /// The layout of the proofs made now (version 4).
    pub const CURRENT: Self = Self { range: Range::Bytes, table_lanes: 16, row_taps: Some(32), split_rows: true };
    /// The layout of version 3.
    pub const V3: Self = Self { row_taps: None, split_rows: false, ..Self::CURRENT };
    /// The layout of versions 1 and 2.
    pub const V1_V2: Self = Self { range: Range::Bits, table_lanes: 1, ..Self::V3 };

    /// The layout of proof format `version`.
    pub fn of(version: u16) -> Self {
        match version {
            ..=2 => Self::V1_V2,
            3 => Self::V3,
            _ => Self::CURRENT,
        }
    }
}

/// Constrains the `n`-bit witness laid out from main column `start` as `range` says and returns its value: `n` bit
/// columns, or ([`Range::Bytes`]) `n / 8` bytes, each looked up on [`BYTE_BUS`] `count` times, then `n % 8` bits.
pub(crate) fn range_check<AB: AirBuilder<F = Val> + InteractionBuilder>(
    b: &mut AB,
    row: &[AB::Var],
    start: usize,
    n: usize,
    count: &AB::Expr,
    range: Range,
) -> AB::Expr {
    use p3_field::PrimeCharacteristicRing as _;
    let l = range.bytes(start, n).len();
    let (mut acc, mut pow) = (AB::Expr::ZERO, Val::ONE);
    for &byte in &row[start..start + l] {
        let byte: AB::Expr = byte.into();
        b.push_interaction(BYTE_BUS, [byte.clone()], Count::bounded(count.clone(), 1));
        acc += byte * pow;
        pow *= Val::from_u64(256);
    }
    acc + crate::gadget::bits(b, row, start + l, n - 8 * l) * pow
}

/// Adds the bytes `inst` looked up in its trace `t` to the byte table's multiplicities.
pub(crate) fn count_trace_bytes(inst: &impl Instance, t: &RowMajorMatrix<Val>, bytes: &mut [u64]) {
    use p3_field::PrimeField64 as _;
    let cols = inst.byte_columns();
    for (r, row) in t.values.chunks(t.width).enumerate() {
        if !inst.reads_bytes(r) {
            continue;
        }
        for &c in &cols {
            bytes[row[c].as_canonical_u64() as usize & 0xff] += 1;
        }
    }
}

/// A zeroed `h x width` trace.
pub(crate) fn zeros(h: usize, width: usize) -> Vec<Val> {
    vec![<Val as p3_field::PrimeCharacteristicRing>::ZERO; h * width]
}

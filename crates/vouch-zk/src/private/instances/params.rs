//! The hidden weights' providers. Each parameter group `(g, p[4g..4g+4])` is provided on [`PARAM_BUS`] with a
//! hidden multiplicity (how often the layers read it), and each sponge block once on [`SPONGE_BUS`], which the
//! weights' [`Sponge`](super::sponge::Sponge) absorbs into the public weights commitment. No range checks are
//! needed for binding where a value is absorbed as it is: the commitment fixes it.
//!
//! - [`Params`]: one plain group per row (biases and multipliers; every group of a model with int16 weights),
//!   absorbed as it is.
//! - [`Packed`]: 7 int8 weight groups per row, packed 7 weights to an element (`sum (w_i + 128) 256^i`, 56 bits) into
//!   one 4-element block: 7x fewer sponge permutations than plain groups. The packing is injective because each
//!   `w_i + 128` is looked up in the [`Bytes`] table.
//! - [`Bytes`]: the 256 byte values, with a hidden multiplicity.

use std::sync::Arc;

use p3_air::{AirBuilder, WindowAccess};
use p3_field::PrimeCharacteristicRing;
use p3_lookup::{Count, InteractionBuilder};
use p3_matrix::dense::RowMajorMatrix;

use crate::Val;
use crate::private::instance::{BYTE_BUS, Instance, PACK, PARAM_BUS, Reads, SPONGE_BUS, WeightsLayout, Witness, zeros};

/// Plain parameter groups, one per row.
#[derive(Clone, Debug)]
pub(crate) struct Params {
    /// The group index of each row.
    pub keys: Arc<Vec<usize>>,
    /// The sponge block of the first row (the packed rows come first).
    pub block0: usize,
}

/// [`Params`] main columns: the 4 lanes, the group's multiplicity.
const PARAMS_WIDTH: usize = 5;

impl Instance for Params {
    fn describe(&self) -> String {
        format!("hidden weights, {} plain groups of 4", self.keys.len())
    }
    fn rows(&self) -> usize {
        self.keys.len()
    }
    fn width(&self) -> usize {
        PARAMS_WIDTH
    }
    fn prep_width(&self) -> usize {
        3
    }
    /// Preprocessed columns: the group index, the sponge block, whether the row is a group.
    fn preprocessed(&self, h: usize) -> Vec<Val> {
        (0..h)
            .flat_map(|r| {
                let real = r < self.keys.len();
                let key = if real { self.keys[r] } else { 0 };
                [Val::from_u64(key as u64), Val::from_u64((self.block0 + r) as u64), Val::from_bool(real)]
            })
            .collect()
    }
    fn eval<AB: AirBuilder<F = Val> + InteractionBuilder>(&self, b: &mut AB) {
        let row: Vec<AB::Var> = b.main().current_slice().to_vec();
        let p: Vec<AB::Var> = b.preprocessed().current_slice().to_vec();
        let (mult, real): (AB::Expr, AB::Expr) = (row[4].into(), p[2].into());
        // A padding row (key 0) provides nothing: it would otherwise stand in for group 0.
        b.assert_zero((AB::Expr::ONE - real.clone()) * mult.clone());
        let lanes = || (0..4).map(|j| row[j].into());
        let group: Vec<AB::Expr> = std::iter::once(p[0].into()).chain(lanes()).collect();
        b.push_interaction(PARAM_BUS, group, Count::provided(-mult));
        let block: Vec<AB::Expr> = std::iter::once(p[1].into()).chain(lanes()).collect();
        b.push_interaction(SPONGE_BUS, block, Count::provided(-real));
    }
    #[cfg(test)]
    fn proven_column(&self) -> usize {
        0
    }
    fn trace(&self, w: &Witness<'_>, h: usize) -> RowMajorMatrix<Val> {
        let mut v = zeros(h, PARAMS_WIDTH);
        if let Some((groups, _)) = w.params {
            for (row, g) in v.chunks_mut(PARAMS_WIDTH).zip(self.keys.iter()) {
                row[..4].copy_from_slice(&groups[*g]);
                row[4] = Val::from_u64(w.reads.params[*g]);
            }
        }
        RowMajorMatrix::new(v, PARAMS_WIDTH)
    }
}

/// Int8 weight groups, 7 per row, packed into one sponge block.
#[derive(Clone, Debug)]
pub(crate) struct Packed {
    pub layout: Arc<WeightsLayout>,
}

/// [`Packed`] main columns: the 28 weights, the 7 groups' multiplicities, the 4 packed elements.
struct PackedCols;

impl PackedCols {
    fn w(i: usize) -> usize {
        i
    }
    fn mult(l: usize) -> usize {
        4 * PACK + l
    }
    fn pk(j: usize) -> usize {
        5 * PACK + j
    }
    const WIDTH: usize = 5 * PACK + 4;
}

/// [`Packed`] preprocessed columns: the 7 group indices, whether each slot holds a group, whether the row is real
/// (its index is its sponge block).
struct PackedPrep;

impl PackedPrep {
    fn key(l: usize) -> usize {
        l
    }
    fn slot(l: usize) -> usize {
        PACK + l
    }
    const REAL: usize = 2 * PACK;
    const ROW: usize = 2 * PACK + 1;
    const WIDTH: usize = 2 * PACK + 2;
}

impl Instance for Packed {
    fn describe(&self) -> String {
        format!("hidden int8 weights, {} rows of {} groups packed {PACK} to an element", self.layout.packed.len(), PACK)
    }
    fn rows(&self) -> usize {
        self.layout.packed.len()
    }
    fn width(&self) -> usize {
        PackedCols::WIDTH
    }
    fn prep_width(&self) -> usize {
        PackedPrep::WIDTH
    }
    fn preprocessed(&self, h: usize) -> Vec<Val> {
        let mut v = Vec::with_capacity(h * PackedPrep::WIDTH);
        for r in 0..h {
            let slots = self.layout.packed.get(r).copied().unwrap_or([None; PACK]);
            v.extend(slots.iter().map(|g| Val::from_u64(g.unwrap_or(0) as u64)));
            v.extend(slots.iter().map(|g| Val::from_bool(g.is_some())));
            v.extend([Val::from_bool(r < self.layout.packed.len()), Val::from_u64(r as u64)]);
        }
        v
    }
    fn eval<AB: AirBuilder<F = Val> + InteractionBuilder>(&self, b: &mut AB) {
        let row: Vec<AB::Var> = b.main().current_slice().to_vec();
        let p: Vec<AB::Var> = b.preprocessed().current_slice().to_vec();
        let real: AB::Expr = p[PackedPrep::REAL].into();
        let offset = AB::Expr::from(Val::from_u64(128));
        // Each packed element of a real row is its 7 weights' bytes, least significant first.
        for j in 0..4 {
            let packed = (0..PACK).rev().fold(AB::Expr::ZERO, |acc, i| {
                acc * AB::Expr::from(Val::from_u64(256)) + row[PackedCols::w(PACK * j + i)].into() + offset.clone()
            });
            b.assert_zero(real.clone() * (row[PackedCols::pk(j)].into() - packed));
        }
        // Each weight is a byte once offset: the packing is then injective.
        for i in 0..4 * PACK {
            b.push_interaction(
                BYTE_BUS,
                [row[PackedCols::w(i)].into() + offset.clone()],
                Count::bounded(real.clone(), 1),
            );
        }
        for l in 0..PACK {
            let mult: AB::Expr = row[PackedCols::mult(l)].into();
            // An empty slot (key 0) provides nothing: it would otherwise stand in for group 0.
            b.assert_zero((AB::Expr::ONE - p[PackedPrep::slot(l)].into()) * mult.clone());
            let group: Vec<AB::Expr> = std::iter::once(p[PackedPrep::key(l)].into())
                .chain((0..4).map(|k| row[PackedCols::w(4 * l + k)].into()))
                .collect();
            b.push_interaction(PARAM_BUS, group, Count::provided(-mult));
        }
        let block: Vec<AB::Expr> =
            std::iter::once(p[PackedPrep::ROW].into()).chain((0..4).map(|j| row[PackedCols::pk(j)].into())).collect();
        b.push_interaction(SPONGE_BUS, block, Count::provided(-real));
    }
    #[cfg(test)]
    fn proven_column(&self) -> usize {
        PackedCols::pk(0)
    }
    fn trace(&self, w: &Witness<'_>, h: usize) -> RowMajorMatrix<Val> {
        let width = PackedCols::WIDTH;
        let mut v = zeros(h, width);
        if let Some((groups, _)) = w.params {
            for (r, row) in v.chunks_mut(width).enumerate().take(self.layout.packed.len()) {
                let ws = self.layout.packed_weights(r, groups);
                row[..4 * PACK].copy_from_slice(&ws);
                for (l, g) in self.layout.packed[r].iter().enumerate() {
                    row[PackedCols::mult(l)] = Val::from_u64(g.map_or(0, |g| w.reads.params[g]));
                }
                let pk = WeightsLayout::pack(&ws);
                row[PackedCols::pk(0)..PackedCols::pk(0) + 4].copy_from_slice(&pk);
            }
        }
        RowMajorMatrix::new(v, width)
    }
}

/// Counts the byte lookups of the packed rows of `layout` (real rows look up all 28 weights; an empty slot's are 0).
pub(crate) fn count_bytes(layout: &WeightsLayout, groups: &[[Val; 4]], reads: &mut Reads) {
    for r in 0..layout.packed.len() {
        for w in layout.packed_weights(r, groups) {
            reads.bytes[byte(w)] += 1;
        }
    }
}

/// An int8 weight's byte `w + 128` (0 for a value outside int8, which no honest model has).
fn byte(w: Val) -> usize {
    use p3_field::PrimeField64 as _;
    let v = (w + Val::from_u64(128)).as_canonical_u64();
    if v < 256 { v as usize } else { 0 }
}

/// The 256 byte values, each with its hidden multiplicity.
#[derive(Clone, Debug)]
pub(crate) struct Bytes;

impl Instance for Bytes {
    fn describe(&self) -> String {
        "byte table, 256 entries".into()
    }
    fn rows(&self) -> usize {
        256
    }
    fn width(&self) -> usize {
        1
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
        // Rows past 255 provide values nobody reads as a byte (the table is exactly 256 rows).
        b.push_interaction(BYTE_BUS, [p[0].into()], Count::provided(-row[0].into()));
    }
    #[cfg(test)]
    fn proven_column(&self) -> usize {
        0
    }
    fn trace(&self, w: &Witness<'_>, h: usize) -> RowMajorMatrix<Val> {
        let mut v = zeros(h, 1);
        for (m, n) in v.iter_mut().zip(&w.reads.bytes) {
            *m = Val::from_u64(*n);
        }
        RowMajorMatrix::new(v, 1)
    }
}

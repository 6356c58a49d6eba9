//! The input, 4 lanes per row: each element is in `[-32767, 32767]` (`x + 32767` and `32767 - x` in 16 bits: two
//! bytes each looked up in the byte table, or bit columns in versions 1-2), lanes past the end are zero. Provides the 4-lane groups on [`GROUP_BUS`] and, when some reader
//! takes single elements (`elementwise`), each element on bus `a0`.

use p3_air::{AirBuilder, WindowAccess};
use p3_field::PrimeCharacteristicRing;
use p3_lookup::{Count, InteractionBuilder};
use p3_matrix::dense::RowMajorMatrix;

use crate::Val;
use crate::gadget::{QMAX, Range, fe};
use crate::private::instance::{GROUP_BUS, Instance, Witness, blocks, bus, range_check, zeros};

/// The input instance.
#[derive(Clone, Debug)]
pub(crate) struct Input {
    /// Input elements.
    pub n: usize,
    /// Whether some reader takes single elements from bus `a0`.
    pub elementwise: bool,
    /// How the two 16-bit range checks per lane are laid out (bytes; bits in versions 1-2).
    pub range: Range,
}

/// Main columns: `x[4]`, per lane `x + 32767` then `32767 - x` in 16 bits (2 bytes, or 16 bit columns), the group
/// multiplicity, then (elementwise) the 4 lane multiplicities.
struct Cols {
    /// Columns of a 16-bit range check.
    w: usize,
}

impl Cols {
    fn x(j: usize) -> usize {
        j
    }
    fn up(&self, j: usize) -> usize {
        4 + 2 * self.w * j
    }
    fn down(&self, j: usize) -> usize {
        self.up(j) + self.w
    }
    fn group_mult(&self) -> usize {
        4 + 8 * self.w
    }
    fn lane_mult(&self, j: usize) -> usize {
        self.group_mult() + 1 + j
    }
}

impl Input {
    fn cols(&self) -> Cols {
        Cols { w: self.range.width(16) }
    }
}

/// Preprocessed columns: the row (group) index, then whether each lane is inside the input.
struct Prep;

impl Prep {
    const ROW: usize = 0;
    fn real(j: usize) -> usize {
        1 + j
    }
    const WIDTH: usize = 5;
}

impl Instance for Input {
    fn describe(&self) -> String {
        format!("input range, {} elements", self.n)
    }
    fn rows(&self) -> usize {
        blocks(self.n)
    }
    fn width(&self) -> usize {
        self.cols().group_mult() + 1 + if self.elementwise { 4 } else { 0 }
    }
    fn prep_width(&self) -> usize {
        Prep::WIDTH
    }
    fn preprocessed(&self, h: usize) -> Vec<Val> {
        let n = self.n;
        (0..h)
            .flat_map(|r| {
                std::iter::once(Val::from_u64(r as u64)).chain((0..4).map(move |j| Val::from_bool(4 * r + j < n)))
            })
            .collect()
    }
    fn eval<AB: AirBuilder<F = Val> + InteractionBuilder>(&self, b: &mut AB) {
        let c = self.cols();
        let row: Vec<AB::Var> = b.main().current_slice().to_vec();
        let p: Vec<AB::Var> = b.preprocessed().current_slice().to_vec();
        let qmax = AB::Expr::from(fe(QMAX));
        let four = AB::Expr::from(Val::from_u64(4));
        // Every lane of a row of the input is range-checked (its lane 0 is real); lanes past the end are zero.
        let row_real: AB::Expr = p[Prep::real(0)].into();
        for j in 0..4 {
            let x: AB::Expr = row[Cols::x(j)].into();
            let up = range_check(b, &row, c.up(j), 16, &row_real, self.range);
            b.assert_eq(up, x.clone() + qmax.clone());
            let down = range_check(b, &row, c.down(j), 16, &row_real, self.range);
            b.assert_eq(down, qmax.clone() - x.clone());
            // Lanes past the input's end are zero.
            b.assert_zero((AB::Expr::ONE - p[Prep::real(j)].into()) * x.clone());
            if self.elementwise {
                let idx = p[Prep::ROW].into() * four.clone() + AB::Expr::from(Val::from_u64(j as u64));
                b.push_interaction(&bus(0), [idx, x], Count::provided(-row[c.lane_mult(j)].into()));
            }
        }
        let msg: Vec<AB::Expr> =
            std::iter::once(p[Prep::ROW].into()).chain((0..4).map(|j| row[Cols::x(j)].into())).collect();
        b.push_interaction(GROUP_BUS, msg, Count::provided(-row[c.group_mult()].into()));
    }
    fn byte_columns(&self) -> Vec<usize> {
        let c = self.cols();
        (0..4).flat_map(|j| self.range.bytes(c.up(j), 16).chain(self.range.bytes(c.down(j), 16))).collect()
    }
    #[cfg(test)]
    fn proven_column(&self) -> usize {
        Cols::x(0)
    }
    fn trace(&self, w: &Witness<'_>, h: usize) -> RowMajorMatrix<Val> {
        let (c, width) = (self.cols(), self.width());
        let mut v = zeros(h, width);
        for (r, row) in v.chunks_mut(width).enumerate() {
            for j in 0..4 {
                let e = 4 * r + j;
                let xi = if e < self.n { i64::from(w.x[e]) } else { 0 };
                row[Cols::x(j)] = fe(xi);
                self.range.put(row, c.up(j), 16, (xi + QMAX) as u128);
                self.range.put(row, c.down(j), 16, (QMAX - xi) as u128);
                if self.elementwise && e < self.n {
                    row[c.lane_mult(j)] = Val::from_u64(w.reads.bus[0][e]);
                }
            }
            row[c.group_mult()] = Val::from_u64(w.reads.groups.get(r).copied().unwrap_or(0));
        }
        RowMajorMatrix::new(v, width)
    }
}

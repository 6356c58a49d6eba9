//! The input, 4 lanes per row: each element is in `[-32767, 32767]` (the two bytes of `x + 32767` and of
//! `32767 - x`, looked up in the byte table), lanes past the end are zero. Provides the 4-lane groups on [`GROUP_BUS`] and, when some reader
//! takes single elements (`elementwise`), each element on bus `a0`.

use p3_air::{AirBuilder, WindowAccess};
use p3_field::PrimeCharacteristicRing;
use p3_lookup::{Count, InteractionBuilder};
use p3_matrix::dense::RowMajorMatrix;

use crate::Val;
use crate::gadget::{QMAX, Range, fe};
use crate::private::instance::{GROUP_BUS, Instance, Witness, blocks, bus, byte_range, zeros};

/// The input instance.
#[derive(Clone, Debug)]
pub(crate) struct Input {
    /// Input elements.
    pub n: usize,
    /// Whether some reader takes single elements from bus `a0`.
    pub elementwise: bool,
}

/// Main columns: `x[4]`, per lane the 2 bytes of `x + 32767` then the 2 of `32767 - x`, the group multiplicity,
/// then (elementwise) the 4 lane multiplicities.
struct Cols;

impl Cols {
    fn x(j: usize) -> usize {
        j
    }
    fn up(j: usize) -> usize {
        4 + 4 * j
    }
    fn down(j: usize) -> usize {
        4 + 4 * j + 2
    }
    const GROUP_MULT: usize = 4 + 4 * 4;
    fn lane_mult(j: usize) -> usize {
        Self::GROUP_MULT + 1 + j
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
        Cols::GROUP_MULT + 1 + if self.elementwise { 4 } else { 0 }
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
        let row: Vec<AB::Var> = b.main().current_slice().to_vec();
        let p: Vec<AB::Var> = b.preprocessed().current_slice().to_vec();
        let qmax = AB::Expr::from(fe(QMAX));
        let four = AB::Expr::from(Val::from_u64(4));
        // Every lane of a row of the input is range-checked (its lane 0 is real); lanes past the end are zero.
        let row_real: AB::Expr = p[Prep::real(0)].into();
        for j in 0..4 {
            let x: AB::Expr = row[Cols::x(j)].into();
            let up = byte_range(b, &row, Cols::up(j), 16, &row_real);
            b.assert_eq(up, x.clone() + qmax.clone());
            let down = byte_range(b, &row, Cols::down(j), 16, &row_real);
            b.assert_eq(down, qmax.clone() - x.clone());
            // Lanes past the input's end are zero.
            b.assert_zero((AB::Expr::ONE - p[Prep::real(j)].into()) * x.clone());
            if self.elementwise {
                let idx = p[Prep::ROW].into() * four.clone() + AB::Expr::from(Val::from_u64(j as u64));
                b.push_interaction(&bus(0), [idx, x], Count::provided(-row[Cols::lane_mult(j)].into()));
            }
        }
        let msg: Vec<AB::Expr> =
            std::iter::once(p[Prep::ROW].into()).chain((0..4).map(|j| row[Cols::x(j)].into())).collect();
        b.push_interaction(GROUP_BUS, msg, Count::provided(-row[Cols::GROUP_MULT].into()));
    }
    fn byte_columns(&self) -> Vec<usize> {
        (Cols::up(0)..Cols::GROUP_MULT).collect()
    }
    #[cfg(test)]
    fn proven_column(&self) -> usize {
        Cols::x(0)
    }
    fn trace(&self, w: &Witness<'_>, h: usize) -> RowMajorMatrix<Val> {
        let width = self.width();
        let mut v = zeros(h, width);
        for (r, row) in v.chunks_mut(width).enumerate() {
            for j in 0..4 {
                let e = 4 * r + j;
                let xi = if e < self.n { i64::from(w.x[e]) } else { 0 };
                row[Cols::x(j)] = fe(xi);
                Range::Bytes.put(row, Cols::up(j), 16, (xi + QMAX) as u128);
                Range::Bytes.put(row, Cols::down(j), 16, (QMAX - xi) as u128);
                if self.elementwise && e < self.n {
                    row[Cols::lane_mult(j)] = Val::from_u64(w.reads.bus[0][e]);
                }
            }
            row[Cols::GROUP_MULT] = Val::from_u64(w.reads.groups.get(r).copied().unwrap_or(0));
        }
        RowMajorMatrix::new(v, width)
    }
}

//! A ReLU on values that may be negative: one row per element, `y = s x` with `s = 1` exactly when `x >= 0`
//! (proven by a 16-bit range check of the chosen side). A ReLU after a fused clamp is not an instance: the plan
//! aliases its bus.

use p3_air::{AirBuilder, WindowAccess};
use p3_field::PrimeCharacteristicRing;
use p3_lookup::{Count, InteractionBuilder};
use p3_matrix::dense::RowMajorMatrix;

use crate::Val;
use crate::gadget::{Range, fe};
use crate::private::instance::{Instance, Reads, Witness, bus, element_rows, range_check, read_each, zeros};

/// The ReLU instance of graph layer `layer`.
#[derive(Clone, Debug)]
pub(crate) struct Relu {
    pub layer: usize,
    pub n: usize,
    pub bus_in: usize,
    pub bus_out: usize,
    /// How the 16-bit range check is laid out (bytes; bits in versions 1-2).
    pub range: Range,
}

/// Main columns: `x`, the sign `s`, `s x + (1 - s)(-x - 1)` in 16 bits (2 bytes, or 16 bit columns), `y = s x`, its
/// multiplicity.
struct Cols {
    /// Columns of the 16-bit range check.
    w: usize,
}

impl Cols {
    const X: usize = 0;
    const S: usize = 1;
    const T: usize = 2;
    fn y(&self) -> usize {
        Self::T + self.w
    }
    fn mult(&self) -> usize {
        self.y() + 1
    }
    fn width(&self) -> usize {
        self.y() + 2
    }
}

impl Relu {
    fn cols(&self) -> Cols {
        Cols { w: self.range.width(16) }
    }
}

/// Preprocessed columns: the element index, whether the row is an element.
struct Prep;

impl Prep {
    const INDEX: usize = 0;
    const REAL: usize = 1;
    const WIDTH: usize = 2;
}

impl Instance for Relu {
    fn describe(&self) -> String {
        format!("relu, layer {}, {} elements", self.layer, self.n)
    }
    fn rows(&self) -> usize {
        self.n
    }
    fn width(&self) -> usize {
        self.cols().width()
    }
    fn prep_width(&self) -> usize {
        Prep::WIDTH
    }
    fn preprocessed(&self, h: usize) -> Vec<Val> {
        element_rows(h, self.n)
    }
    fn eval<AB: AirBuilder<F = Val> + InteractionBuilder>(&self, b: &mut AB) {
        let c = self.cols();
        let row: Vec<AB::Var> = b.main().current_slice().to_vec();
        let p: Vec<AB::Var> = b.preprocessed().current_slice().to_vec();
        let (x, s, y): (AB::Expr, AB::Expr, AB::Expr) = (row[Cols::X].into(), row[Cols::S].into(), row[c.y()].into());
        b.assert_bool(s.clone());
        b.assert_eq(y.clone(), s.clone() * x.clone());
        // s = 1 exactly when x >= 0: the chosen side's value is in [0, 2^16).
        let (idx, real): (AB::Expr, AB::Expr) = (p[Prep::INDEX].into(), p[Prep::REAL].into());
        let t = range_check(b, &row, Cols::T, 16, &real, self.range);
        b.assert_eq(t, s.clone() * x.clone() + (AB::Expr::ONE - s) * (-x.clone() - AB::Expr::ONE));
        b.push_interaction(&bus(self.bus_in), [idx.clone(), x], Count::bounded(real, 1));
        b.push_interaction(&bus(self.bus_out), [idx, y], Count::provided(-row[c.mult()].into()));
    }
    fn count_reads(&self, reads: &mut Reads) {
        read_each(reads, self.bus_in, self.n);
    }
    fn provides(&self) -> Option<usize> {
        Some(self.layer)
    }
    fn byte_columns(&self) -> Vec<usize> {
        self.range.bytes(Cols::T, 16).collect()
    }
    #[cfg(test)]
    fn proven_column(&self) -> usize {
        self.cols().y()
    }
    fn trace(&self, w: &Witness<'_>, h: usize) -> RowMajorMatrix<Val> {
        let c = self.cols();
        let width = c.width();
        let mut v = zeros(h, width);
        for (r, row) in v.chunks_mut(width).enumerate() {
            let xi = if r < self.n { i64::from(w.buses[self.bus_in][r]) } else { 0 };
            let s = xi >= 0;
            row[Cols::X] = fe(xi);
            row[Cols::S] = Val::from_bool(s);
            self.range.put(row, Cols::T, 16, if s { xi } else { -xi - 1 } as u128);
            row[c.y()] = fe(if s { xi } else { 0 });
            row[c.mult()] = Val::from_u64(if r < self.n { w.reads.bus[self.bus_out][r] } else { 0 });
        }
        RowMajorMatrix::new(v, width)
    }
}

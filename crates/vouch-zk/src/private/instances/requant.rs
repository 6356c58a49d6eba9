//! The requantization of a chunked linear layer's accumulators: one row per output, the `(output, acc)` message
//! the [`Mac`](super::mac::Mac) instance sends is received here, `y = clamp(requant(acc + b))` through the [`Rq`]
//! gadget, and `y` is provided on the layer's output bus.

use std::sync::Arc;

use p3_air::{AirBuilder, WindowAccess};
use p3_field::PrimeCharacteristicRing;
use p3_lookup::{Count, InteractionBuilder};
use p3_matrix::dense::RowMajorMatrix;

use crate::Val;
use crate::gadget::{Rq, fe};
use crate::private::instance::{Instance, Witness, acc_bus, bus, zeros};
use crate::rows::LinearRows;

/// The requantization instance of graph layer `layer`.
#[derive(Clone, Debug)]
pub(crate) struct Requant {
    pub layer: usize,
    pub rows: Arc<LinearRows>,
    pub bus_out: usize,
}

/// Main columns: `acc` (without the bias), the [`Rq`] gadget from 1, `y`, its multiplicity.
struct Cols {
    rq: Rq,
}

impl Cols {
    const ACC: usize = 0;
    const RQ_BASE: usize = 1;
    fn y(&self) -> usize {
        self.rq.cols(Self::RQ_BASE).end
    }
    fn mult(&self) -> usize {
        self.y() + 1
    }
    fn width(&self) -> usize {
        self.y() + 2
    }
}

/// Preprocessed columns: `b`, `M`, the output index, whether the row is an output.
struct Prep;

impl Prep {
    const BIAS: usize = 0;
    const MULT: usize = 1;
    const OUT: usize = 2;
    const REAL: usize = 3;
    const WIDTH: usize = 4;
}

impl Instance for Requant {
    fn describe(&self) -> String {
        format!("requantization, layer {}, {} outputs", self.layer, self.rows.rows)
    }
    fn rows(&self) -> usize {
        self.rows.rows
    }
    fn width(&self) -> usize {
        Cols { rq: self.rows.rq() }.width()
    }
    fn prep_width(&self) -> usize {
        Prep::WIDTH
    }
    fn preprocessed(&self, h: usize) -> Vec<Val> {
        let lr = &self.rows;
        (0..h)
            .flat_map(|r| {
                let real = r < lr.rows;
                let (b, m) = if real { (lr.bias[r], lr.mult[r]) } else { (0, 0) };
                [fe(b), fe(m), Val::from_u64(r as u64), Val::from_bool(real)]
            })
            .collect()
    }
    fn eval<AB: AirBuilder<F = Val> + InteractionBuilder>(&self, b: &mut AB) {
        let c = Cols { rq: self.rows.rq() };
        let row: Vec<AB::Var> = b.main().current_slice().to_vec();
        let p: Vec<AB::Var> = b.preprocessed().current_slice().to_vec();
        let y: AB::Expr = row[c.y()].into();
        let acc = row[Cols::ACC].into() + p[Prep::BIAS].into();
        c.rq.eval(b, &row, Cols::RQ_BASE, acc, p[Prep::MULT].into(), y.clone());
        b.push_interaction(
            &acc_bus(self.bus_out),
            [p[Prep::OUT].into(), row[Cols::ACC].into()],
            Count::bounded(-p[Prep::REAL].into(), 1),
        );
        b.push_interaction(&bus(self.bus_out), [p[Prep::OUT].into(), y], Count::provided(-row[c.mult()].into()));
    }
    fn provides(&self) -> Option<usize> {
        Some(self.layer)
    }
    #[cfg(test)]
    fn proven_column(&self) -> usize {
        Cols { rq: self.rows.rq() }.y()
    }
    fn trace(&self, w: &Witness<'_>, h: usize) -> RowMajorMatrix<Val> {
        let (lr, c) = (&self.rows, Cols { rq: self.rows.rq() });
        let xin = w.buses[self.bus_out - 1];
        let width = c.width();
        let mut v = zeros(h, width);
        for (r, row) in v.chunks_mut(width).enumerate() {
            if r < lr.rows {
                let acc = lr.acc(r, xin) - lr.bias[r];
                row[Cols::ACC] = fe(acc);
                row[c.y()] = fe(c.rq.fill(row, Cols::RQ_BASE, acc + lr.bias[r], lr.mult[r]));
                row[c.mult()] = Val::from_u64(w.reads.bus[self.bus_out][r]);
            } else {
                c.rq.fill(row, Cols::RQ_BASE, 0, 0);
            }
        }
        RowMajorMatrix::new(v, width)
    }
}

//! The requantization of a chunked linear layer's accumulators: one row per output, the `(output, acc)` message
//! the [`Mac`](super::mac::Mac) instance sends is received here, `y = clamp(requant(acc + b))` through the [`Rq`]
//! gadget, and `y` is provided on the layer's output bus. With hidden weights, `b` and `M` are main columns looked
//! up as the output's `[b, M, 0, 0]` group on [`PARAM_BUS`].

use std::sync::Arc;

use p3_air::{AirBuilder, WindowAccess};
use p3_field::PrimeCharacteristicRing;
use p3_lookup::{Count, InteractionBuilder};
use p3_matrix::dense::RowMajorMatrix;

use crate::Val;
use crate::gadget::{Range, Rq, fe};
use crate::private::instance::{Instance, PARAM_BUS, Pw, Reads, Witness, acc_bus, bus, range_check, zeros};
use crate::rows::LinearRows;

/// The requantization instance of graph layer `layer`.
#[derive(Clone, Debug)]
pub(crate) struct Requant {
    pub layer: usize,
    pub rows: Arc<LinearRows>,
    pub bus_out: usize,
    /// Hidden weights: where the bias and multiplier are read.
    pub pw: Option<Pw>,
    /// How the requantization gadget's witnesses are range-checked (bytes; bits in versions 1-2).
    pub range: Range,
}

/// Main columns: `acc` (without the bias), the [`Rq`] gadget from 1, `y`, its multiplicity, then (hidden weights)
/// `b` and `M`.
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
    fn b(&self) -> usize {
        self.y() + 2
    }
    fn m(&self) -> usize {
        self.y() + 3
    }
    fn width(&self, pw: bool) -> usize {
        self.y() + if pw { 4 } else { 2 }
    }
}

/// Preprocessed columns: `b`, `M` (zero with hidden weights), the output index, whether the row is an output,
/// then (hidden weights) the output's `[b, M, 0, 0]` group.
struct Prep;

impl Prep {
    const BIAS: usize = 0;
    const MULT: usize = 1;
    const OUT: usize = 2;
    const REAL: usize = 3;
    const BM: usize = 4;
    fn width(pw: bool) -> usize {
        if pw { 5 } else { 4 }
    }
}

impl Requant {
    fn cols(&self) -> Cols {
        Cols { rq: self.rows.rq().with_range(self.range) }
    }
}

impl Instance for Requant {
    fn describe(&self) -> String {
        format!("requantization, layer {}, {} outputs", self.layer, self.rows.rows)
    }
    fn rows(&self) -> usize {
        self.rows.rows
    }
    fn width(&self) -> usize {
        self.cols().width(self.pw.is_some())
    }
    fn prep_width(&self) -> usize {
        Prep::width(self.pw.is_some())
    }
    fn preprocessed(&self, h: usize) -> Vec<Val> {
        let lr = &self.rows;
        (0..h)
            .flat_map(|r| {
                let real = r < lr.rows;
                let (b, m) = if real && self.pw.is_none() { (lr.bias[r], lr.mult[r]) } else { (0, 0) };
                let bm = self.pw.map(|pw| if real { Val::from_u64(pw.bm_group(r) as u64) } else { Val::ZERO });
                [fe(b), fe(m), Val::from_u64(r as u64), Val::from_bool(real)].into_iter().chain(bm)
            })
            .collect()
    }
    fn eval<AB: AirBuilder<F = Val> + InteractionBuilder>(&self, b: &mut AB) {
        let c = self.cols();
        let row: Vec<AB::Var> = b.main().current_slice().to_vec();
        let p: Vec<AB::Var> = b.preprocessed().current_slice().to_vec();
        let y: AB::Expr = row[c.y()].into();
        let (bias, mult): (AB::Expr, AB::Expr) = if self.pw.is_some() {
            let msg = [p[Prep::BM].into(), row[c.b()].into(), row[c.m()].into(), AB::Expr::ZERO, AB::Expr::ZERO];
            b.push_interaction(PARAM_BUS, msg, Count::bounded(p[Prep::REAL].into(), 1));
            (row[c.b()].into(), row[c.m()].into())
        } else {
            (p[Prep::BIAS].into(), p[Prep::MULT].into())
        };
        let real: AB::Expr = p[Prep::REAL].into();
        let range = &mut |b: &mut AB, s, n| range_check(b, &row, s, n, &real, self.range);
        c.rq.eval_with(b, &row, Cols::RQ_BASE, row[Cols::ACC].into() + bias, mult, y.clone(), range);
        b.push_interaction(
            &acc_bus(self.bus_out),
            [p[Prep::OUT].into(), row[Cols::ACC].into()],
            Count::bounded(-p[Prep::REAL].into(), 1),
        );
        b.push_interaction(&bus(self.bus_out), [p[Prep::OUT].into(), y], Count::provided(-row[c.mult()].into()));
    }
    fn count_reads(&self, reads: &mut Reads) {
        if let Some(pw) = &self.pw {
            (0..self.rows.rows).for_each(|r| reads.params[pw.bm_group(r)] += 1);
        }
    }
    fn byte_columns(&self) -> Vec<usize> {
        self.cols().rq.byte_columns(Cols::RQ_BASE).collect()
    }
    fn provides(&self) -> Option<usize> {
        Some(self.layer)
    }
    #[cfg(test)]
    fn proven_column(&self) -> usize {
        self.cols().y()
    }
    fn trace(&self, w: &Witness<'_>, h: usize) -> RowMajorMatrix<Val> {
        let (lr, c) = (&self.rows, self.cols());
        let xin = w.buses[self.bus_out - 1];
        let width = c.width(self.pw.is_some());
        let mut v = zeros(h, width);
        for (r, row) in v.chunks_mut(width).enumerate() {
            if r < lr.rows {
                let acc = lr.acc(r, xin) - lr.bias[r];
                row[Cols::ACC] = fe(acc);
                row[c.y()] = fe(c.rq.fill(row, Cols::RQ_BASE, acc + lr.bias[r], lr.mult[r]));
                row[c.mult()] = Val::from_u64(w.reads.bus[self.bus_out][r]);
                if self.pw.is_some() {
                    row[c.b()] = fe(lr.bias[r]);
                    row[c.m()] = fe(lr.mult[r]);
                }
            } else {
                c.rq.fill(row, Cols::RQ_BASE, 0, 0);
            }
        }
        RowMajorMatrix::new(v, width)
    }
}

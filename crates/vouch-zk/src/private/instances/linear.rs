//! A linear layer with at most [`CHUNK`](crate::private::plan::CHUNK) taps per output (Dense, Conv, AveragePool):
//! one row per output, `y = clamp(requant(b + sum w x))` through the [`Rq`] gadget, its taps looked up on the input
//! bus (a Dense layer on the input reads 4-lane groups), `y` provided on the output bus.

use std::sync::Arc;

use p3_air::{AirBuilder, WindowAccess};
use p3_field::PrimeCharacteristicRing;
use p3_lookup::{Count, InteractionBuilder};
use p3_matrix::dense::RowMajorMatrix;

use crate::Val;
use crate::gadget::{Rq, fe};
use crate::private::instance::{GROUP_BUS, Instance, Reads, Witness, bus, zeros};
use crate::rows::LinearRows;

/// The linear instance of graph layer `layer`.
#[derive(Clone, Debug)]
pub(crate) struct Linear {
    pub layer: usize,
    pub rows: Arc<LinearRows>,
    pub bus_in: usize,
    pub bus_out: usize,
    /// A Dense layer: tap `t` reads input element `t` (no tap columns).
    pub dense: bool,
    /// A Dense layer on the input: reads it 4 lanes per lookup from [`GROUP_BUS`].
    pub grouped: bool,
}

/// Main columns: the taps `x[0..k]`, the [`Rq`] gadget from `k`, `y`, its multiplicity.
struct Cols {
    k: usize,
    rq: Rq,
}

impl Cols {
    fn x(&self, t: usize) -> usize {
        t
    }
    fn rq_base(&self) -> usize {
        self.k
    }
    fn y(&self) -> usize {
        self.rq.cols(self.k).end
    }
    fn mult(&self) -> usize {
        self.y() + 1
    }
    fn width(&self) -> usize {
        self.y() + 2
    }
}

/// Preprocessed columns: `w[0..k]`, `b`, `M`, the output index, whether the row is an output, then (not dense)
/// the tap indices `[0..k]`.
struct Prep {
    k: usize,
    dense: bool,
}

impl Prep {
    fn w(&self, t: usize) -> usize {
        t
    }
    fn bias(&self) -> usize {
        self.k
    }
    fn mult(&self) -> usize {
        self.k + 1
    }
    fn out(&self) -> usize {
        self.k + 2
    }
    fn real(&self) -> usize {
        self.k + 3
    }
    fn tap(&self, t: usize) -> usize {
        self.k + 4 + t
    }
    fn width(&self) -> usize {
        self.k + 4 + if self.dense { 0 } else { self.k }
    }
}

impl Linear {
    fn cols(&self) -> Cols {
        Cols { k: self.rows.k, rq: self.rows.rq() }
    }
    fn prep(&self) -> Prep {
        Prep { k: self.rows.k, dense: self.dense }
    }
}

impl Instance for Linear {
    fn describe(&self) -> String {
        let kind = if self.dense { "dense" } else { "linear" };
        format!("{kind}, layer {}, {} outputs of {} taps", self.layer, self.rows.rows, self.rows.k)
    }
    fn rows(&self) -> usize {
        self.rows.rows
    }
    fn width(&self) -> usize {
        self.cols().width()
    }
    fn prep_width(&self) -> usize {
        self.prep().width()
    }
    fn preprocessed(&self, h: usize) -> Vec<Val> {
        let (lr, k) = (&self.rows, self.rows.k);
        let mut v = Vec::with_capacity(h * self.prep_width());
        for r in 0..h {
            let real = r < lr.rows;
            if real {
                v.extend(lr.w[r * k..(r + 1) * k].iter().map(|w| fe(*w)));
                v.extend([fe(lr.bias[r]), fe(lr.mult[r])]);
            } else {
                v.extend(std::iter::repeat_n(Val::ZERO, k + 2));
            }
            v.extend([Val::from_u64(r as u64), Val::from_bool(real)]);
            if !self.dense {
                v.extend(
                    (0..k)
                        .map(|t| if real { Val::from_u64(lr.taps[r * k + t].unwrap_or(0) as u64) } else { Val::ZERO }),
                );
            }
        }
        v
    }
    fn eval<AB: AirBuilder<F = Val> + InteractionBuilder>(&self, b: &mut AB) {
        let (c, pc, k) = (self.cols(), self.prep(), self.rows.k);
        let row: Vec<AB::Var> = b.main().current_slice().to_vec();
        let p: Vec<AB::Var> = b.preprocessed().current_slice().to_vec();
        let mut acc: AB::Expr = p[pc.bias()].into();
        for t in 0..k {
            acc += p[pc.w(t)].into() * row[c.x(t)].into();
        }
        let y: AB::Expr = row[c.y()].into();
        c.rq.eval(b, &row, c.rq_base(), acc, p[pc.mult()].into(), y.clone());
        let (out_idx, real): (AB::Expr, AB::Expr) = (p[pc.out()].into(), p[pc.real()].into());
        if self.grouped {
            for j in 0..k.div_ceil(4) {
                let lane = |t: usize| if t < k { row[c.x(t)].into() } else { AB::Expr::ZERO };
                let msg: Vec<AB::Expr> = std::iter::once(AB::Expr::from(Val::from_u64(j as u64)))
                    .chain((4 * j..4 * j + 4).map(lane))
                    .collect();
                b.push_interaction(GROUP_BUS, msg, Count::bounded(real.clone(), 1));
            }
        } else {
            for t in 0..k {
                let idx = if self.dense { AB::Expr::from(Val::from_u64(t as u64)) } else { p[pc.tap(t)].into() };
                b.push_interaction(&bus(self.bus_in), [idx, row[c.x(t)].into()], Count::bounded(real.clone(), 1));
            }
        }
        b.push_interaction(&bus(self.bus_out), [out_idx, y], Count::provided(-row[c.mult()].into()));
    }
    fn count_reads(&self, reads: &mut Reads) {
        let lr = &self.rows;
        if self.grouped {
            reads.groups[..lr.k.div_ceil(4)].iter_mut().for_each(|m| *m += lr.rows as u64);
        } else {
            for t in &lr.taps {
                reads.bus[self.bus_in][t.unwrap_or(0)] += 1;
            }
        }
    }
    fn provides(&self) -> Option<usize> {
        Some(self.layer)
    }
    #[cfg(test)]
    fn proven_column(&self) -> usize {
        self.cols().y()
    }
    fn trace(&self, w: &Witness<'_>, h: usize) -> RowMajorMatrix<Val> {
        let (c, lr, k) = (self.cols(), &self.rows, self.rows.k);
        let xin = w.buses[self.bus_in];
        let width = c.width();
        let mut v = zeros(h, width);
        for (r, row) in v.chunks_mut(width).enumerate() {
            if r < lr.rows {
                for t in 0..k {
                    row[c.x(t)] = fe(i64::from(xin[lr.taps[r * k + t].unwrap_or(0)]));
                }
                let y = c.rq.fill(row, c.rq_base(), lr.acc(r, xin), lr.mult[r]);
                row[c.y()] = fe(y);
                row[c.mult()] = Val::from_u64(w.reads.bus[self.bus_out][r]);
            } else {
                c.rq.fill(row, c.rq_base(), 0, 0);
            }
        }
        RowMajorMatrix::new(v, width)
    }
}

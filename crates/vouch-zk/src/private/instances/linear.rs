//! A linear layer with at most [`CHUNK`](crate::private::plan::CHUNK) taps per output (Dense, Conv, AveragePool):
//! one row per output, `y = clamp(requant(b + sum w x))` through the [`Rq`] gadget, its taps looked up on the input
//! bus (a Dense layer on the input reads 4-lane groups), `y` provided on the output bus.
//!
//! With hidden weights ([`Pw`]) the weights, bias and multiplier are main columns looked up on [`PARAM_BUS`], the
//! sum `a = b + sum w x` is a column (so `a * M` stays degree 2), and a padded tap is a zero instead of a lookup.

use std::sync::Arc;

use p3_air::{AirBuilder, WindowAccess};
use p3_field::PrimeCharacteristicRing;
use p3_lookup::{Count, InteractionBuilder};
use p3_matrix::dense::RowMajorMatrix;

use crate::Val;
use crate::gadget::{Range, Rq, fe};
use crate::private::instance::{GROUP_BUS, Instance, PARAM_BUS, Pw, Reads, Witness, bus, range_check, zeros};
use crate::rows::LinearRows;

/// The linear instance of graph layer `layer`.
#[derive(Clone, Debug)]
pub(crate) struct Linear {
    pub layer: usize,
    /// The layer's rows: this instance proves `len` of them from `offset` (all of them, or one of two parts).
    pub rows: Arc<LinearRows>,
    pub offset: usize,
    pub len: usize,
    pub bus_in: usize,
    pub bus_out: usize,
    /// A Dense layer: tap `t` reads input element `t` (no tap columns).
    pub dense: bool,
    /// A Dense layer on the input: reads it 4 lanes per lookup from [`GROUP_BUS`].
    pub grouped: bool,
    /// Hidden weights: where they are read.
    pub pw: Option<Pw>,
    /// How the requantization gadget's witnesses are range-checked (bytes; bits in versions 1-2).
    pub range: Range,
}

/// Main columns: the taps `x[0..k]`, (hidden weights) `w[0..k]`, `b`, `M`, `a`, the [`Rq`] gadget, `y`, its
/// multiplicity.
struct Cols {
    k: usize,
    /// Whether the weights are hidden (main columns).
    pw: bool,
    rq: Rq,
}

impl Cols {
    fn x(&self, t: usize) -> usize {
        t
    }
    fn w(&self, t: usize) -> usize {
        self.k + t
    }
    fn b(&self) -> usize {
        2 * self.k
    }
    fn m(&self) -> usize {
        2 * self.k + 1
    }
    fn a(&self) -> usize {
        2 * self.k + 2
    }
    fn rq_base(&self) -> usize {
        if self.pw { 2 * self.k + 3 } else { self.k }
    }
    fn y(&self) -> usize {
        self.rq.cols(self.rq_base()).end
    }
    fn mult(&self) -> usize {
        self.y() + 1
    }
    fn width(&self) -> usize {
        self.y() + 2
    }
}

/// Preprocessed columns: `w[0..k]`, `b`, `M`, the output index, whether the row is an output, then (not dense)
/// the tap indices `[0..k]`. With hidden weights: no `w`, `b`, `M` (their slots stay, zero), then the row's first
/// weight group, its bias group, and (not dense) whether each tap is padding.
struct Prep {
    k: usize,
    dense: bool,
    pw: bool,
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
    fn taps_end(&self) -> usize {
        self.k + 4 + if self.dense { 0 } else { self.k }
    }
    fn wgroup(&self) -> usize {
        self.taps_end()
    }
    fn bmgroup(&self) -> usize {
        self.taps_end() + 1
    }
    fn pad(&self, t: usize) -> usize {
        self.taps_end() + 2 + t
    }
    fn width(&self) -> usize {
        self.taps_end()
            + if !self.pw {
                0
            } else if self.dense {
                2
            } else {
                2 + self.k
            }
    }
}

impl Linear {
    fn cols(&self) -> Cols {
        Cols { k: self.rows.k, pw: self.pw.is_some(), rq: self.rows.rq().with_range(self.range) }
    }
    fn prep(&self) -> Prep {
        Prep { k: self.rows.k, dense: self.dense, pw: self.pw.is_some() }
    }
}

impl Linear {
    /// Looks up the row's hidden weights, 4 per message, and its `[b, M, 0, 0]`.
    fn eval_weights<AB: AirBuilder<F = Val> + InteractionBuilder>(&self, b: &mut AB, row: &[AB::Var], p: &[AB::Var]) {
        let (c, pc) = (self.cols(), self.prep());
        let slots = self.pw.map_or(0, |pw| pw.slots);
        let real: AB::Expr = p[pc.real()].into();
        for l in 0..slots / 4 {
            let lane = |t: usize| if t < c.k { row[c.w(t)].into() } else { AB::Expr::ZERO };
            let key = p[pc.wgroup()].into() + AB::Expr::from(Val::from_u64(l as u64));
            let msg: Vec<AB::Expr> = std::iter::once(key).chain((4 * l..4 * l + 4).map(lane)).collect();
            b.push_interaction(PARAM_BUS, msg, Count::bounded(real.clone(), 1));
        }
        let msg = [p[pc.bmgroup()].into(), row[c.b()].into(), row[c.m()].into(), AB::Expr::ZERO, AB::Expr::ZERO];
        b.push_interaction(PARAM_BUS, msg, Count::bounded(real, 1));
    }
}

impl Instance for Linear {
    fn describe(&self) -> String {
        let kind = if self.dense { "dense" } else { "linear" };
        let part = if self.len == self.rows.rows {
            String::new()
        } else {
            format!(" (outputs {}..{})", self.offset, self.offset + self.len)
        };
        format!("{kind}, layer {}, {} outputs of {} taps{part}", self.layer, self.rows.rows, self.rows.k)
    }
    fn rows(&self) -> usize {
        self.len
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
        for i in 0..h {
            let (real, r) = (i < self.len, self.offset + i);
            if real && self.pw.is_none() {
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
            if let Some(pw) = &self.pw {
                let group = |g: usize| if real { Val::from_u64(g as u64) } else { Val::ZERO };
                v.extend([group(pw.group(r, 0)), group(pw.bm_group(r))]);
                if !self.dense {
                    v.extend((0..k).map(|t| Val::from_bool(real && lr.taps[r * k + t].is_none())));
                }
            }
        }
        v
    }
    fn eval<AB: AirBuilder<F = Val> + InteractionBuilder>(&self, b: &mut AB) {
        let (c, pc, k) = (self.cols(), self.prep(), self.rows.k);
        let row: Vec<AB::Var> = b.main().current_slice().to_vec();
        let p: Vec<AB::Var> = b.preprocessed().current_slice().to_vec();
        let (out_idx, real): (AB::Expr, AB::Expr) = (p[pc.out()].into(), p[pc.real()].into());
        let y: AB::Expr = row[c.y()].into();
        if self.pw.is_some() {
            // a = b + sum w x, then y = requant(a * M).
            let mut acc: AB::Expr = row[c.b()].into();
            for t in 0..k {
                acc += row[c.w(t)].into() * row[c.x(t)].into();
            }
            b.assert_eq(row[c.a()].into(), acc);
            let range = &mut |b: &mut AB, s, n| range_check(b, &row, s, n, &real, self.range);
            c.rq.eval_with(b, &row, c.rq_base(), row[c.a()].into(), row[c.m()].into(), y.clone(), range);
            self.eval_weights(b, &row, &p);
        } else {
            let mut acc: AB::Expr = p[pc.bias()].into();
            for t in 0..k {
                acc += p[pc.w(t)].into() * row[c.x(t)].into();
            }
            let range = &mut |b: &mut AB, s, n| range_check(b, &row, s, n, &real, self.range);
            c.rq.eval_with(b, &row, c.rq_base(), acc, p[pc.mult()].into(), y.clone(), range);
        }
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
                // With hidden weights a padded tap is zero and reads nothing (its weight is the kernel's).
                let count = if self.pw.is_some() && !self.dense {
                    let pad: AB::Expr = p[pc.pad(t)].into();
                    b.assert_zero(pad.clone() * row[c.x(t)].into());
                    real.clone() - pad
                } else {
                    real.clone()
                };
                b.push_interaction(&bus(self.bus_in), [idx, row[c.x(t)].into()], Count::bounded(count, 1));
            }
        }
        b.push_interaction(&bus(self.bus_out), [out_idx, y], Count::provided(-row[c.mult()].into()));
    }
    fn count_reads(&self, reads: &mut Reads) {
        let (lr, part) = (&self.rows, self.offset..self.offset + self.len);
        if self.grouped {
            reads.groups[..lr.k.div_ceil(4)].iter_mut().for_each(|m| *m += self.len as u64);
        } else {
            for t in &lr.taps[part.start * lr.k..part.end * lr.k] {
                match t {
                    Some(t) => reads.bus[self.bus_in][*t] += 1,
                    None if self.pw.is_none() => reads.bus[self.bus_in][0] += 1,
                    None => {}
                }
            }
        }
        if let Some(pw) = &self.pw {
            for r in part {
                (0..pw.slots / 4).for_each(|l| reads.params[pw.group(r, l)] += 1);
                reads.params[pw.bm_group(r)] += 1;
            }
        }
    }
    fn byte_columns(&self) -> Vec<usize> {
        let c = self.cols();
        c.rq.byte_columns(c.rq_base()).collect()
    }
    /// The layer's first part provides its bus (a second part sends its outputs on the same bus).
    fn provides(&self) -> Option<usize> {
        (self.offset == 0).then_some(self.layer)
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
        for (i, row) in v.chunks_mut(width).enumerate() {
            let r = self.offset + i;
            if i < self.len {
                for t in 0..k {
                    row[c.x(t)] = match lr.taps[r * k + t] {
                        Some(e) => fe(i64::from(xin[e])),
                        None if self.pw.is_some() => Val::ZERO,
                        None => fe(i64::from(xin[0])),
                    };
                }
                let acc = lr.acc(r, xin);
                if self.pw.is_some() {
                    for t in 0..k {
                        row[c.w(t)] = fe(lr.w[r * k + t]);
                    }
                    row[c.b()] = fe(lr.bias[r]);
                    row[c.m()] = fe(lr.mult[r]);
                    row[c.a()] = fe(acc);
                }
                let y = c.rq.fill(row, c.rq_base(), acc, lr.mult[r]);
                row[c.y()] = fe(y);
                row[c.mult()] = Val::from_u64(w.reads.bus[self.bus_out][r]);
            } else {
                c.rq.fill(row, c.rq_base(), 0, 0);
            }
        }
        RowMajorMatrix::new(v, width)
    }
}

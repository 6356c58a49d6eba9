//! A linear layer with more than [`CHUNK`](crate::private::plan::CHUNK) taps per output: `c` taps per row, an
//! accumulator running over each output's rows (its first row starts the sum), and the last row of each output
//! sends `(output, acc)` on bus `c{bus_out}` to its [`Requant`](super::requant::Requant) instance. Rows stay
//! narrow, so proofs and verification stay small for wide layers.

use std::sync::Arc;

use p3_air::{AirBuilder, WindowAccess};
use p3_field::PrimeCharacteristicRing;
use p3_lookup::{Count, InteractionBuilder};
use p3_matrix::dense::RowMajorMatrix;

use crate::Val;
use crate::gadget::fe;
use crate::private::instance::{GROUP_BUS, Instance, PARAM_BUS, Pw, Reads, Witness, acc_bus, bus, zeros};
use crate::rows::LinearRows;

/// The multiply-accumulate instance of graph layer `layer`.
#[derive(Clone, Debug)]
pub(crate) struct Mac {
    pub layer: usize,
    pub rows: Arc<LinearRows>,
    /// Taps per row (a multiple of 4 when `grouped`).
    pub c: usize,
    pub bus_in: usize,
    pub bus_out: usize,
    /// A Dense layer on the input: reads it 4 lanes per lookup from [`GROUP_BUS`].
    pub grouped: bool,
    /// Hidden weights: where they are read (`c` is then a multiple of 4).
    pub pw: Option<Pw>,
}

/// Main columns: the taps `x[0..c]`, the running sum `acc`, then (hidden weights) `w[0..c]`.
struct Cols {
    c: usize,
    pw: bool,
}

impl Cols {
    fn x(&self, t: usize) -> usize {
        t
    }
    fn acc(&self) -> usize {
        self.c
    }
    fn w(&self, t: usize) -> usize {
        self.c + 1 + t
    }
    fn width(&self) -> usize {
        if self.pw { 2 * self.c + 1 } else { self.c + 1 }
    }
}

/// Preprocessed columns: `w[0..c]`, the keys (`c` tap keys, or `c/4` group keys), the output index, whether the
/// row is the output's first, whether it is its last, whether it is an output row at all. With hidden weights the
/// `w` slots are zero, then the row's first weight group and whether each tap is padding.
struct Prep {
    c: usize,
    keys: usize,
    pw: bool,
}

impl Prep {
    fn w(&self, t: usize) -> usize {
        t
    }
    fn key(&self, l: usize) -> usize {
        self.c + l
    }
    fn out(&self) -> usize {
        self.c + self.keys
    }
    fn first(&self) -> usize {
        self.c + self.keys + 1
    }
    fn last(&self) -> usize {
        self.c + self.keys + 2
    }
    fn real(&self) -> usize {
        self.c + self.keys + 3
    }
    fn wgroup(&self) -> usize {
        self.c + self.keys + 4
    }
    fn pad(&self, t: usize) -> usize {
        self.c + self.keys + 5 + t
    }
    fn width(&self) -> usize {
        self.c + self.keys + if self.pw { 5 + self.c } else { 4 }
    }
}

/// Output `o`, chunk `ch`, slot `t`: its tap's (weight, key) (a dead slot past the last tap reads key 0 with
/// weight 0).
pub(crate) fn mac_tap(lr: &LinearRows, c: usize, o: usize, ch: usize, t: usize) -> (i64, usize) {
    let tt = ch * c + t;
    if tt < lr.k { (lr.w[o * lr.k + tt], lr.taps[o * lr.k + tt].unwrap_or(0)) } else { (0, 0) }
}

/// The group key of message `l` of chunk `ch` (0 for a dead group).
fn mac_group(lr: &LinearRows, c: usize, ch: usize, l: usize) -> usize {
    if ch * c + 4 * l < lr.k { ch * c / 4 + l } else { 0 }
}

impl Mac {
    fn chunks(&self) -> usize {
        self.rows.k.div_ceil(self.c)
    }
    fn prep(&self) -> Prep {
        Prep { c: self.c, keys: if self.grouped { self.c / 4 } else { self.c }, pw: self.pw.is_some() }
    }
    fn cols(&self) -> Cols {
        Cols { c: self.c, pw: self.pw.is_some() }
    }
    /// Whether slot `t` of output `o`'s chunk `ch` is a padded tap (inside the kernel, outside the input).
    fn padded(&self, o: usize, ch: usize, t: usize) -> bool {
        let tt = ch * self.c + t;
        tt < self.rows.k && self.rows.taps[o * self.rows.k + tt].is_none()
    }
}

impl Instance for Mac {
    fn describe(&self) -> String {
        format!(
            "multiply-accumulate, layer {}, {} outputs of {} taps in rows of {}",
            self.layer, self.rows.rows, self.rows.k, self.c
        )
    }
    fn rows(&self) -> usize {
        self.rows.rows * self.chunks()
    }
    fn width(&self) -> usize {
        self.cols().width()
    }
    fn prep_width(&self) -> usize {
        self.prep().width()
    }
    fn next_row_columns(&self) -> (Vec<usize>, Vec<usize>) {
        let (c, pc) = (self.cols(), self.prep());
        ((0..c.width()).collect(), (0..self.c).map(|t| pc.w(t)).chain([pc.first()]).collect())
    }
    fn preprocessed(&self, h: usize) -> Vec<Val> {
        let (lr, c, n_c, keys) = (&self.rows, self.c, self.chunks(), self.prep().keys);
        let idx = |v: usize| Val::from_u64(v as u64);
        let mut v = Vec::with_capacity(h * self.prep_width());
        for r in 0..h {
            let (o, ch) = (r / n_c, r % n_c);
            if o < lr.rows {
                let hidden = self.pw.is_some();
                v.extend((0..c).map(|t| if hidden { Val::ZERO } else { fe(mac_tap(lr, c, o, ch, t).0) }));
                if self.grouped {
                    v.extend((0..keys).map(|l| idx(mac_group(lr, c, ch, l))));
                } else {
                    v.extend((0..c).map(|t| idx(mac_tap(lr, c, o, ch, t).1)));
                }
                v.extend([idx(o), Val::from_bool(ch == 0), Val::from_bool(ch + 1 == n_c), Val::ONE]);
                if let Some(pw) = &self.pw {
                    v.push(idx(pw.group(o, ch * c / 4)));
                    v.extend((0..c).map(|t| Val::from_bool(self.padded(o, ch, t))));
                }
            } else {
                // Padding rows: each its own empty sum.
                v.extend(std::iter::repeat_n(Val::ZERO, c + keys));
                v.extend([Val::ZERO, Val::ONE, Val::ZERO, Val::ZERO]);
                if self.pw.is_some() {
                    v.extend(std::iter::repeat_n(Val::ZERO, c + 1));
                }
            }
        }
        v
    }
    fn eval<AB: AirBuilder<F = Val> + InteractionBuilder>(&self, b: &mut AB) {
        let (col, pc) = (self.cols(), self.prep());
        let main = b.main();
        let (row, next): (Vec<AB::Var>, Vec<AB::Var>) = (main.current_slice().to_vec(), main.next_slice().to_vec());
        let prep = b.preprocessed();
        let (p, pn): (Vec<AB::Var>, Vec<AB::Var>) = (prep.current_slice().to_vec(), prep.next_slice().to_vec());
        // The weights: preprocessed, or hidden in the main trace.
        let hidden = self.pw.is_some();
        let dot = |p: &[AB::Var], x: &[AB::Var]| {
            (0..self.c).fold(AB::Expr::ZERO, |a, t| {
                let w = if hidden { x[col.w(t)] } else { p[pc.w(t)] };
                a + w.into() * x[col.x(t)].into()
            })
        };
        let real: AB::Expr = p[pc.real()].into();
        // An output's first row starts the sum; each following row adds to the previous row's sum.
        b.assert_zero(p[pc.first()].into() * (row[col.acc()].into() - dot(&p, &row)));
        let next_first: AB::Expr = pn[pc.first()].into();
        b.assert_zero(
            (AB::Expr::ONE - next_first) * (next[col.acc()].into() - row[col.acc()].into() - dot(&pn, &next)),
        );
        if hidden {
            for l in 0..self.c / 4 {
                let key = p[pc.wgroup()].into() + AB::Expr::from(Val::from_u64(l as u64));
                let msg: Vec<AB::Expr> =
                    std::iter::once(key).chain((4 * l..4 * l + 4).map(|t| row[col.w(t)].into())).collect();
                b.push_interaction(PARAM_BUS, msg, Count::bounded(real.clone(), 1));
            }
        }
        if self.grouped {
            for l in 0..self.c / 4 {
                let msg: Vec<AB::Expr> = std::iter::once(p[pc.key(l)].into())
                    .chain((4 * l..4 * l + 4).map(|t| row[col.x(t)].into()))
                    .collect();
                b.push_interaction(GROUP_BUS, msg, Count::bounded(real.clone(), 1));
            }
        } else {
            for t in 0..self.c {
                // With hidden weights a padded tap is zero and reads nothing (its weight is the kernel's).
                let count = if hidden {
                    let pad: AB::Expr = p[pc.pad(t)].into();
                    b.assert_zero(pad.clone() * row[col.x(t)].into());
                    real.clone() - pad
                } else {
                    real.clone()
                };
                b.push_interaction(
                    &bus(self.bus_in),
                    [p[pc.key(t)].into(), row[col.x(t)].into()],
                    Count::bounded(count, 1),
                );
            }
        }
        b.push_interaction(
            &acc_bus(self.bus_out),
            [p[pc.out()].into(), row[col.acc()].into()],
            Count::bounded(p[pc.last()].into(), 1),
        );
    }
    fn count_reads(&self, reads: &mut Reads) {
        let (lr, c) = (&self.rows, self.c);
        for o in 0..lr.rows {
            for ch in 0..self.chunks() {
                if self.grouped {
                    (0..c / 4).for_each(|l| reads.groups[mac_group(lr, c, ch, l)] += 1);
                } else {
                    let pw = self.pw.is_some();
                    (0..c)
                        .filter(|t| !(pw && self.padded(o, ch, *t)))
                        .for_each(|t| reads.bus[self.bus_in][mac_tap(lr, c, o, ch, t).1] += 1);
                }
                if let Some(pw) = &self.pw {
                    (0..c / 4).for_each(|l| reads.params[pw.group(o, ch * c / 4 + l)] += 1);
                }
            }
        }
    }
    #[cfg(test)]
    fn proven_column(&self) -> usize {
        self.cols().acc()
    }
    fn trace(&self, w: &Witness<'_>, h: usize) -> RowMajorMatrix<Val> {
        let (lr, c, n_c) = (&self.rows, self.c, self.chunks());
        let col = self.cols();
        let xin = w.buses[self.bus_in];
        let lane = |e: usize| xin.get(e).map(|v| i64::from(*v)).unwrap_or(0);
        let width = col.width();
        let mut v = zeros(h, width);
        let mut acc = 0i64;
        for (r, row) in v.chunks_mut(width).enumerate().take(lr.rows * n_c) {
            let (o, ch) = (r / n_c, r % n_c);
            if ch == 0 {
                acc = 0;
            }
            for t in 0..c {
                let (wt, key) = mac_tap(lr, c, o, ch, t);
                let xv = if self.grouped {
                    lane(4 * mac_group(lr, c, ch, t / 4) + t % 4)
                } else if self.padded(o, ch, t) {
                    // A padded tap: zero (with preprocessed weights its weight is zero and key 0 is read).
                    if self.pw.is_some() { 0 } else { lane(key) }
                } else {
                    lane(key)
                };
                row[col.x(t)] = fe(xv);
                if self.pw.is_some() {
                    let tt = ch * c + t;
                    row[col.w(t)] = fe(if tt < lr.k { lr.w[o * lr.k + tt] } else { 0 });
                }
                acc += wt * xv;
            }
            row[col.acc()] = fe(acc);
        }
        RowMajorMatrix::new(v, width)
    }
}

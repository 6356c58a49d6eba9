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
use crate::private::instance::{GROUP_BUS, Instance, Reads, Witness, acc_bus, bus, zeros};
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
}

/// Main columns: the taps `x[0..c]`, the running sum `acc`.
struct Cols {
    c: usize,
}

impl Cols {
    fn x(&self, t: usize) -> usize {
        t
    }
    fn acc(&self) -> usize {
        self.c
    }
    fn width(&self) -> usize {
        self.c + 1
    }
}

/// Preprocessed columns: `w[0..c]`, the keys (`c` tap keys, or `c/4` group keys), the output index, whether the
/// row is the output's first, whether it is its last, whether it is an output row at all.
struct Prep {
    c: usize,
    keys: usize,
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
    fn width(&self) -> usize {
        self.c + self.keys + 4
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
        Prep { c: self.c, keys: if self.grouped { self.c / 4 } else { self.c } }
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
        Cols { c: self.c }.width()
    }
    fn prep_width(&self) -> usize {
        self.prep().width()
    }
    fn next_row_columns(&self) -> (Vec<usize>, Vec<usize>) {
        let (c, pc) = (Cols { c: self.c }, self.prep());
        ((0..c.width()).collect(), (0..self.c).map(|t| pc.w(t)).chain([pc.first()]).collect())
    }
    fn preprocessed(&self, h: usize) -> Vec<Val> {
        let (lr, c, n_c, keys) = (&self.rows, self.c, self.chunks(), self.prep().keys);
        let idx = |v: usize| Val::from_u64(v as u64);
        let mut v = Vec::with_capacity(h * self.prep_width());
        for r in 0..h {
            let (o, ch) = (r / n_c, r % n_c);
            if o < lr.rows {
                v.extend((0..c).map(|t| fe(mac_tap(lr, c, o, ch, t).0)));
                if self.grouped {
                    v.extend((0..keys).map(|l| idx(mac_group(lr, c, ch, l))));
                } else {
                    v.extend((0..c).map(|t| idx(mac_tap(lr, c, o, ch, t).1)));
                }
                v.extend([idx(o), Val::from_bool(ch == 0), Val::from_bool(ch + 1 == n_c), Val::ONE]);
            } else {
                // Padding rows: each its own empty sum.
                v.extend(std::iter::repeat_n(Val::ZERO, c + keys));
                v.extend([Val::ZERO, Val::ONE, Val::ZERO, Val::ZERO]);
            }
        }
        v
    }
    fn eval<AB: AirBuilder<F = Val> + InteractionBuilder>(&self, b: &mut AB) {
        let (col, pc) = (Cols { c: self.c }, self.prep());
        let main = b.main();
        let (row, next): (Vec<AB::Var>, Vec<AB::Var>) = (main.current_slice().to_vec(), main.next_slice().to_vec());
        let prep = b.preprocessed();
        let (p, pn): (Vec<AB::Var>, Vec<AB::Var>) = (prep.current_slice().to_vec(), prep.next_slice().to_vec());
        let dot = |w: &[AB::Var], x: &[AB::Var]| {
            (0..self.c).fold(AB::Expr::ZERO, |a, t| a + w[pc.w(t)].into() * x[col.x(t)].into())
        };
        let real: AB::Expr = p[pc.real()].into();
        // An output's first row starts the sum; each following row adds to the previous row's sum.
        b.assert_zero(p[pc.first()].into() * (row[col.acc()].into() - dot(&p, &row)));
        let next_first: AB::Expr = pn[pc.first()].into();
        b.assert_zero(
            (AB::Expr::ONE - next_first) * (next[col.acc()].into() - row[col.acc()].into() - dot(&pn, &next)),
        );
        if self.grouped {
            for l in 0..self.c / 4 {
                let msg: Vec<AB::Expr> = std::iter::once(p[pc.key(l)].into())
                    .chain((4 * l..4 * l + 4).map(|t| row[col.x(t)].into()))
                    .collect();
                b.push_interaction(GROUP_BUS, msg, Count::bounded(real.clone(), 1));
            }
        } else {
            for t in 0..self.c {
                b.push_interaction(
                    &bus(self.bus_in),
                    [p[pc.key(t)].into(), row[col.x(t)].into()],
                    Count::bounded(real.clone(), 1),
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
                    (0..c).for_each(|t| reads.bus[self.bus_in][mac_tap(lr, c, o, ch, t).1] += 1);
                }
            }
        }
    }
    #[cfg(test)]
    fn proven_column(&self) -> usize {
        Cols { c: self.c }.acc()
    }
    fn trace(&self, w: &Witness<'_>, h: usize) -> RowMajorMatrix<Val> {
        let (lr, c, n_c) = (&self.rows, self.c, self.chunks());
        let col = Cols { c };
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
                let xv = if self.grouped { lane(4 * mac_group(lr, c, ch, t / 4) + t % 4) } else { lane(key) };
                row[col.x(t)] = fe(xv);
                acc += wt * xv;
            }
            row[col.acc()] = fe(acc);
        }
        RowMajorMatrix::new(v, width)
    }
}

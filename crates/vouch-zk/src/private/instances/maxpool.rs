//! Max pooling: one row per output, `y` is at least every valid tap of its window (16-bit range checks of
//! `y - x`) and equals one of them (a one-hot selector over valid taps); an empty window gives 0.

use std::sync::Arc;

use p3_air::{AirBuilder, WindowAccess};
use p3_field::PrimeCharacteristicRing;
use p3_lookup::{Count, InteractionBuilder};
use p3_matrix::dense::RowMajorMatrix;

use crate::Val;
use crate::gadget::{Range, fe};
use crate::private::instance::{Instance, Reads, Witness, bus, range_check, zeros};
use crate::rows::LinearRows;

/// The max-pool instance of graph layer `layer`: its windows as [`LinearRows`] taps (`w` is 1 on a valid tap).
#[derive(Clone, Debug)]
pub(crate) struct MaxPool {
    pub layer: usize,
    pub rows: Arc<LinearRows>,
    pub bus_in: usize,
    pub bus_out: usize,
    /// How the gaps' 16-bit range checks are laid out (bytes; bits in versions 1-2).
    pub range: Range,
}

/// Main columns: the taps `x[0..k]`, the one-hot selector `s[0..k]`, per tap `live (y - x)` in 16 bits (2 bytes, or
/// 16 bit columns), `y`, its multiplicity.
struct Cols {
    k: usize,
    /// Columns of a 16-bit range check.
    w: usize,
}

impl Cols {
    fn x(&self, t: usize) -> usize {
        t
    }
    fn sel(&self, t: usize) -> usize {
        self.k + t
    }
    fn gap(&self, t: usize) -> usize {
        2 * self.k + self.w * t
    }
    fn y(&self) -> usize {
        self.gap(self.k)
    }
    fn mult(&self) -> usize {
        self.y() + 1
    }
    fn width(&self) -> usize {
        self.y() + 2
    }
}

/// Preprocessed columns: the tap keys `[0..k]`, whether each tap is valid `[0..k]`, the output index, whether the
/// window has a valid tap.
struct Prep {
    k: usize,
}

impl Prep {
    fn key(&self, t: usize) -> usize {
        t
    }
    fn live(&self, t: usize) -> usize {
        self.k + t
    }
    fn out(&self) -> usize {
        2 * self.k
    }
    fn any(&self) -> usize {
        2 * self.k + 1
    }
    fn width(&self) -> usize {
        2 * self.k + 2
    }
}

impl MaxPool {
    fn cols(&self) -> Cols {
        Cols { k: self.rows.k, w: self.range.width(16) }
    }
}

impl Instance for MaxPool {
    fn describe(&self) -> String {
        format!("max pool, layer {}, {} outputs of {} taps", self.layer, self.rows.rows, self.rows.k)
    }
    fn rows(&self) -> usize {
        self.rows.rows
    }
    fn width(&self) -> usize {
        self.cols().width()
    }
    fn prep_width(&self) -> usize {
        Prep { k: self.rows.k }.width()
    }
    fn preprocessed(&self, h: usize) -> Vec<Val> {
        let (lr, k) = (&self.rows, self.rows.k);
        let mut v = Vec::with_capacity(h * self.prep_width());
        for r in 0..h {
            let real = r < lr.rows;
            let tap = |t: usize| if real { lr.taps[r * k + t] } else { None };
            v.extend((0..k).map(|t| Val::from_u64(tap(t).unwrap_or(0) as u64)));
            v.extend((0..k).map(|t| Val::from_bool(tap(t).is_some())));
            v.extend([Val::from_u64(r as u64), Val::from_bool((0..k).any(|t| tap(t).is_some()))]);
        }
        v
    }
    fn eval<AB: AirBuilder<F = Val> + InteractionBuilder>(&self, b: &mut AB) {
        let k = self.rows.k;
        let (c, pc) = (self.cols(), Prep { k });
        let row: Vec<AB::Var> = b.main().current_slice().to_vec();
        let p: Vec<AB::Var> = b.preprocessed().current_slice().to_vec();
        let y: AB::Expr = row[c.y()].into();
        let (mut picked, mut chosen) = (AB::Expr::ZERO, AB::Expr::ZERO);
        // The gaps of a window with a valid tap are range-checked (a padding tap's is zero).
        let any: AB::Expr = p[pc.any()].into();
        for t in 0..k {
            let (x, sel, live): (AB::Expr, AB::Expr, AB::Expr) =
                (row[c.x(t)].into(), row[c.sel(t)].into(), p[pc.live(t)].into());
            // y is at least every valid tap ...
            let d = range_check(b, &row, c.gap(t), 16, &any, self.range);
            b.assert_eq(d, live.clone() * (y.clone() - x.clone()));
            // ... and equals one of them (one-hot over valid taps; none for an empty window, y = 0).
            b.assert_bool(sel.clone());
            b.assert_zero(sel.clone() * (AB::Expr::ONE - live.clone()));
            picked += sel.clone();
            chosen += sel * x.clone();
            b.push_interaction(&bus(self.bus_in), [p[pc.key(t)].into(), x], Count::bounded(live, 1));
        }
        b.assert_eq(picked, p[pc.any()].into());
        b.assert_eq(y.clone(), chosen);
        b.push_interaction(&bus(self.bus_out), [p[pc.out()].into(), y], Count::provided(-row[c.mult()].into()));
    }
    fn count_reads(&self, reads: &mut Reads) {
        for t in self.rows.taps.iter().flatten() {
            reads.bus[self.bus_in][*t] += 1;
        }
    }
    fn provides(&self) -> Option<usize> {
        Some(self.layer)
    }
    fn byte_columns(&self) -> Vec<usize> {
        let c = self.cols();
        (0..self.rows.k).flat_map(|t| self.range.bytes(c.gap(t), 16)).collect()
    }
    fn reads_bytes(&self, r: usize) -> bool {
        let k = self.rows.k;
        r < self.rows.rows && self.rows.taps[r * k..(r + 1) * k].iter().any(Option::is_some)
    }
    #[cfg(test)]
    fn proven_column(&self) -> usize {
        self.cols().y()
    }
    fn trace(&self, w: &Witness<'_>, h: usize) -> RowMajorMatrix<Val> {
        let (lr, k) = (&self.rows, self.rows.k);
        let c = self.cols();
        let xin = w.buses[self.bus_in];
        let width = c.width();
        let mut v = zeros(h, width);
        for (r, row) in v.chunks_mut(width).enumerate().take(lr.rows) {
            let taps = &lr.taps[r * k..(r + 1) * k];
            let best = taps.iter().enumerate().filter_map(|(t, i)| i.map(|i| (t, xin[i]))).max_by_key(|(_, v)| *v);
            let y = best.map(|(_, v)| i64::from(v)).unwrap_or(0);
            for (t, tap) in taps.iter().enumerate() {
                let x = tap.map(|i| i64::from(xin[i])).unwrap_or(0);
                row[c.x(t)] = fe(x);
                row[c.sel(t)] = Val::from_bool(best.is_some_and(|(bt, _)| bt == t));
                self.range.put(row, c.gap(t), 16, if tap.is_some() { (y - x) as u128 } else { 0 });
            }
            row[c.y()] = fe(y);
            row[c.mult()] = Val::from_u64(w.reads.bus[self.bus_out][r]);
        }
        RowMajorMatrix::new(v, width)
    }
}

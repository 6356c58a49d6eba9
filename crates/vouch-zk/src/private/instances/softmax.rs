//! Softmax over the last axis, as the integer executor computes it: for each row of `last` elements, `m = max(x)`,
//! `e = exp_table[m - x]`, `S = sum e`, `y = floor((2 * 32767 * e + S) / (2 S))`.
//!
//! One trace row per element, the rows of a softmax row consecutive. `m` and `S` are constant within a row; a
//! one-hot selector marks an element equal to `m` (exactly one per row, counted by a running sum) and the 2 bytes
//! of `m - x` prove `m` is at least every element, so `m` is the row's maximum. `e` is looked up in the
//! layer's exp table (a [`Table`](super::lookup::Table) keyed by the gap `m - x`); a running sum over the row ends
//! at `S`. The division is `2 * 32767 * e + S = y * 2S + r` with `y` in 16 bits and `0 <= r < 2S` (both `r` and
//! `2S - 1 - r` range-checked to [`Softmax::rb`] bits), which has one solution. Range checks are bytes looked up in
//! the byte table (bits for a field's last `n mod 8`). Every quantity stays far below 2^63, so
//! the field identities are integer ones.

use p3_air::{AirBuilder, WindowAccess};
use p3_field::PrimeCharacteristicRing;
use p3_lookup::{Count, InteractionBuilder};
use p3_matrix::dense::RowMajorMatrix;
use vouch_quant::EXP_BITS;

use super::lookup::table_bus;
use crate::Val;
use crate::gadget::{QMAX, Range, fe};
use crate::private::instance::{Instance, Reads, Witness, bus, range_check, read_each, zeros};

/// The softmax instance of graph layer `layer`.
#[derive(Clone, Debug)]
pub(crate) struct Softmax {
    pub layer: usize,
    /// Elements.
    pub n: usize,
    /// Elements per softmax row.
    pub last: usize,
    /// The exp table (also the layer's [`Table`](super::lookup::Table)'s values).
    pub exp: std::sync::Arc<Vec<i64>>,
    pub bus_in: usize,
    pub bus_out: usize,
    /// How the range checks are laid out (bytes; bits in versions 1-2).
    pub range: Range,
}

/// Main columns: `x`, `m`, the selector, `m - x` in 16 bits, `e`, the running sums of `e` and of the selector, `S`,
/// `y`, `y` in 16 bits, `r` then `2S - 1 - r` in `rb` bits (each range-checked field in bytes, or bit columns in
/// versions 1-2), the multiplicity.
struct Cols {
    rb: usize,
    range: Range,
}

impl Cols {
    const X: usize = 0;
    const M: usize = 1;
    const SEL: usize = 2;
    const D: usize = 3;
    fn e(&self) -> usize {
        Self::D + self.range.width(16)
    }
    fn acc(&self) -> usize {
        self.e() + 1
    }
    fn cnt(&self) -> usize {
        self.e() + 2
    }
    fn s(&self) -> usize {
        self.e() + 3
    }
    fn y(&self) -> usize {
        self.e() + 4
    }
    fn yb(&self) -> usize {
        self.e() + 5
    }
    fn r(&self) -> usize {
        self.yb() + self.range.width(16)
    }
    fn r2(&self) -> usize {
        self.r() + self.range.width(self.rb)
    }
    fn mult(&self) -> usize {
        self.r2() + self.range.width(self.rb)
    }
    fn width(&self) -> usize {
        self.mult() + 1
    }
}

/// Preprocessed columns: the element index, whether the row is an element, the first and last element of a row.
struct Prep;

impl Prep {
    const INDEX: usize = 0;
    const REAL: usize = 1;
    const FIRST: usize = 2;
    const LAST: usize = 3;
    const WIDTH: usize = 4;
}

impl Softmax {
    /// Bits of the remainder: `2S <= 2 * last * 2^EXP_BITS`.
    pub(crate) fn rb(&self) -> usize {
        let top = (2u128 * self.last.max(1) as u128) << EXP_BITS;
        (128 - top.leading_zeros()) as usize
    }
    fn cols(&self) -> Cols {
        Cols { rb: self.rb(), range: self.range }
    }
}

impl Instance for Softmax {
    fn describe(&self) -> String {
        format!("softmax, layer {}, {} elements in rows of {}", self.layer, self.n, self.last)
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
    fn next_row_columns(&self) -> (Vec<usize>, Vec<usize>) {
        let c = self.cols();
        (vec![Cols::M, Cols::SEL, c.e(), c.acc(), c.cnt(), c.s()], vec![Prep::FIRST])
    }
    fn preprocessed(&self, h: usize) -> Vec<Val> {
        let last = self.last.max(1);
        (0..h)
            .flat_map(|r| {
                let real = r < self.n;
                // Padding rows: each a row of its own that is not an element.
                let (first, end) = if real { (r % last == 0, r % last == last - 1) } else { (true, false) };
                [Val::from_u64(r as u64), Val::from_bool(real), Val::from_bool(first), Val::from_bool(end)]
            })
            .collect()
    }
    fn eval<AB: AirBuilder<F = Val> + InteractionBuilder>(&self, b: &mut AB) {
        let c = self.cols();
        let main = b.main();
        let (row, next): (Vec<AB::Var>, Vec<AB::Var>) = (main.current_slice().to_vec(), main.next_slice().to_vec());
        let prep = b.preprocessed();
        let (p, pn): (Vec<AB::Var>, Vec<AB::Var>) = (prep.current_slice().to_vec(), prep.next_slice().to_vec());
        let v = |i: usize| -> AB::Expr { row[i].into() };
        let (x, m, sel, e, acc, cnt, s, y) =
            (v(Cols::X), v(Cols::M), v(Cols::SEL), v(c.e()), v(c.acc()), v(c.cnt()), v(c.s()), v(c.y()));
        let (real, first, end): (AB::Expr, AB::Expr, AB::Expr) =
            (p[Prep::REAL].into(), p[Prep::FIRST].into(), p[Prep::LAST].into());

        // m is at least x, and equals the selected element.
        let d = range_check(b, &row, Cols::D, 16, &real, self.range);
        b.assert_eq(d, m.clone() - x.clone());
        b.assert_bool(sel.clone());
        b.assert_zero(sel.clone() * (m.clone() - x.clone()));
        // Running sums of e and of the selector over the row; m and S constant within it.
        b.assert_zero(first.clone() * (acc.clone() - e.clone()));
        b.assert_zero(first * (cnt.clone() - sel));
        let same: AB::Expr = AB::Expr::ONE - pn[Prep::FIRST].into();
        let n = |i: usize| -> AB::Expr { next[i].into() };
        b.assert_zero(same.clone() * (n(c.acc()) - acc.clone() - n(c.e())));
        b.assert_zero(same.clone() * (n(c.cnt()) - cnt.clone() - n(Cols::SEL)));
        b.assert_zero(same.clone() * (n(Cols::M) - m.clone()));
        b.assert_zero(same * (n(c.s()) - s.clone()));
        b.assert_zero(end.clone() * (acc - s.clone()));
        b.assert_zero(end * (cnt - AB::Expr::ONE));
        // 2 QMAX e + S = y 2S + r, y < 2^16, 0 <= r < 2S.
        let yb = range_check(b, &row, c.yb(), 16, &real, self.range);
        b.assert_eq(yb, y.clone());
        let r = range_check(b, &row, c.r(), c.rb, &real, self.range);
        let r2 = range_check(b, &row, c.r2(), c.rb, &real, self.range);
        let two_s = s.clone() + s.clone();
        b.assert_eq(r2, real.clone() * (two_s.clone() - AB::Expr::ONE - r.clone()));
        b.assert_eq(AB::Expr::from(fe(2 * QMAX)) * e.clone() + s, y.clone() * two_s + r);

        let idx: AB::Expr = p[Prep::INDEX].into();
        b.push_interaction(&bus(self.bus_in), [idx.clone(), x.clone()], Count::bounded(real.clone(), 1));
        b.push_interaction(&table_bus(self.layer), [m - x, e], Count::bounded(real, 1));
        b.push_interaction(&bus(self.bus_out), [idx, y], Count::provided(-row[c.mult()].into()));
    }
    fn count_reads(&self, reads: &mut Reads) {
        read_each(reads, self.bus_in, self.n);
    }
    fn provides(&self) -> Option<usize> {
        Some(self.layer)
    }
    fn byte_columns(&self) -> Vec<usize> {
        let c = self.cols();
        let b = |start: usize, n: usize| self.range.bytes(start, n);
        b(Cols::D, 16).chain(b(c.yb(), 16)).chain(b(c.r(), c.rb)).chain(b(c.r2(), c.rb)).collect()
    }
    #[cfg(test)]
    fn proven_column(&self) -> usize {
        self.cols().y()
    }
    fn trace(&self, w: &Witness<'_>, h: usize) -> RowMajorMatrix<Val> {
        let c = self.cols();
        let width = c.width();
        let mut v = zeros(h, width);
        let (xs, ys) = (&w.buses[self.bus_in][..self.n], &w.buses[self.bus_out][..self.n]);
        let last = self.last.max(1);
        for (g, rows) in v.chunks_mut(width * last).take(self.n.div_ceil(last)).enumerate() {
            let xr = &xs[g * last..((g + 1) * last).min(self.n)];
            let m = i64::from(xr.iter().copied().max().unwrap_or(0));
            let chosen = xr.iter().position(|x| i64::from(*x) == m).unwrap_or(0);
            let es: Vec<i64> = xr.iter().map(|x| self.exp[(m - i64::from(*x)) as usize]).collect();
            let s: i64 = es.iter().sum();
            let (mut acc, mut cnt) = (0i64, 0i64);
            for (j, row) in rows.chunks_mut(width).enumerate().take(xr.len()) {
                let (x, e, y) = (i64::from(xr[j]), es[j], i64::from(ys[g * last + j]));
                let sel = j == chosen;
                (acc, cnt) = (acc + e, cnt + i64::from(sel));
                row[Cols::X] = fe(x);
                row[Cols::M] = fe(m);
                row[Cols::SEL] = Val::from_bool(sel);
                self.range.put(row, Cols::D, 16, (m - x) as u128);
                row[c.e()] = fe(e);
                row[c.acc()] = fe(acc);
                row[c.cnt()] = fe(cnt);
                row[c.s()] = fe(s);
                row[c.y()] = fe(y);
                self.range.put(row, c.yb(), 16, y as u128);
                let r = 2 * QMAX * e + s - y * 2 * s;
                self.range.put(row, c.r(), c.rb, r as u128);
                self.range.put(row, c.r2(), c.rb, (2 * s - 1 - r) as u128);
                row[c.mult()] = Val::from_u64(w.reads.bus[self.bus_out][g * last + j]);
            }
        }
        RowMajorMatrix::new(v, width)
    }
}

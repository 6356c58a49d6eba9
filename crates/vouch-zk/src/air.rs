//! The AIR of one linear layer (Dense or Conv): one trace row per output,
//! `y = clamp(floor(((b + sum_t w_t x_t) * M + 2^(S-1)) / 2^S), LO, 32767)`.
//!
//! - Preprocessed (committed once per model, the model's zk commitment): `w[0..K]`, `b`, `M` per row.
//! - Periodic (public, evaluated by the verifier): the row's input taps `x[0..K]` and its output `y`.
//! - Main: `v = acc * M`; `q` as `QB` bits offset by `2^(QB-1)`; the remainder as `S` bits; clamp flags
//!   `hi`, `lo`; `d` (`DB` bits) and `e` (16 bits) proving the clamp case.
//!
//! Every quantity stays below 2^63 in magnitude, so each field identity in Goldilocks (p ~ 2^64) is an integer
//! identity: the trace proves exactly the integer executor's arithmetic.

use std::borrow::Cow;

use p3_air::{Air, AirBuilder, BaseAir, WindowAccess};
use p3_field::PrimeCharacteristicRing;
use p3_matrix::dense::RowMajorMatrix;

use crate::Val;

/// Largest activation.
pub const QMAX: i64 = 32767;
/// Bits of the `e` range check (`QMAX - q` in the in-range case).
pub const EB: usize = 16;

/// Shape and public data of one layer's AIR.
#[derive(Clone, Debug)]
pub struct LayerAir {
    /// Taps per output.
    pub k: usize,
    /// Requantization shift.
    pub shift: u32,
    /// Bits of the offset quotient.
    pub qb: usize,
    /// Bits of the clamp witness `d`.
    pub db: usize,
    /// Lower clamp (0 with a fused ReLU, else -32767).
    pub lo: i64,
    /// Periodic columns: `k` tap columns, then `y`.
    pub periodic: Vec<Vec<Val>>,
    /// Preprocessed rows (`w[0..k]`, `b`, `M`); `None` on the verifier's side.
    pub prep: Option<RowMajorMatrix<Val>>,
}

/// Column offsets of the main trace.
pub struct Cols {
    /// `v`.
    pub v: usize,
    /// First bit of `q + 2^(qb-1)`.
    pub q: usize,
    /// First bit of the remainder.
    pub rem: usize,
    /// Clamp flag: above.
    pub hi: usize,
    /// Clamp flag: below.
    pub lo: usize,
    /// First bit of `d`.
    pub d: usize,
    /// First bit of `e`.
    pub e: usize,
    /// Width.
    pub width: usize,
}

impl LayerAir {
    /// Main column layout.
    pub fn cols(&self) -> Cols {
        let v = 0;
        let q = 1;
        let rem = q + self.qb;
        let hi = rem + self.shift as usize;
        let lo = hi + 1;
        let d = lo + 1;
        let e = d + self.db;
        Cols { v, q, rem, hi, lo, d, e, width: e + EB }
    }
}

/// A signed integer as a field element.
pub fn fe(v: i64) -> Val {
    if v >= 0 { Val::from_u64(v as u64) } else { -Val::from_u64(v.unsigned_abs()) }
}

impl BaseAir<Val> for LayerAir {
    fn width(&self) -> usize {
        self.cols().width
    }
    fn preprocessed_width(&self) -> usize {
        self.k + 2
    }
    fn preprocessed_trace(&self) -> Option<RowMajorMatrix<Val>> {
        self.prep.clone()
    }
    fn num_periodic_columns(&self) -> usize {
        self.periodic.len()
    }
    fn periodic_columns(&self) -> Cow<'_, [Vec<Val>]> {
        Cow::Borrowed(&self.periodic)
    }
    fn num_public_values(&self) -> usize {
        4
    }
    fn main_next_row_columns(&self) -> Vec<usize> {
        vec![]
    }
    fn preprocessed_next_row_columns(&self) -> Vec<usize> {
        vec![]
    }
}

fn bits<AB: AirBuilder>(b: &mut AB, row: &[AB::Var], start: usize, n: usize) -> AB::Expr {
    let mut acc = AB::Expr::ZERO;
    let mut pow = AB::Expr::ONE;
    for i in 0..n {
        let bit: AB::Expr = row[start + i].into();
        b.assert_bool(bit.clone());
        acc += bit * pow.clone();
        pow = pow.clone() + pow;
    }
    acc
}

impl<AB: AirBuilder<F = Val>> Air<AB> for LayerAir {
    fn eval(&self, b: &mut AB) {
        let c = self.cols();
        let main = b.main();
        let row: Vec<AB::Var> = main.current_slice().to_vec();
        let prep: Vec<AB::Var> = b.preprocessed().current_slice().to_vec();
        let per: Vec<AB::Expr> = b.periodic_values().iter().map(|p| (*p).into()).collect();

        // v = (b + sum w x) * M
        let mut acc: AB::Expr = prep[self.k].into();
        for t in 0..self.k {
            acc += prep[t].into() * per[t].clone();
        }
        let v: AB::Expr = row[c.v].into();
        b.assert_eq(v.clone(), acc * prep[self.k + 1].into());

        // v + 2^(S-1) = q * 2^S + rem, q = Q - 2^(qb-1), Q < 2^qb, rem < 2^S
        let q = bits(b, &row, c.q, self.qb) - AB::Expr::from(fe(1i64 << (self.qb - 1)));
        let rem = bits(b, &row, c.rem, self.shift as usize);
        let half = if self.shift == 0 { 0 } else { 1i64 << (self.shift - 1) };
        b.assert_eq(v + AB::Expr::from(fe(half)), q.clone() * AB::Expr::from(fe(1i64 << self.shift)) + rem);

        // Clamp to [LO, QMAX].
        let hi: AB::Expr = row[c.hi].into();
        let lo: AB::Expr = row[c.lo].into();
        b.assert_bool(hi.clone());
        b.assert_bool(lo.clone());
        b.assert_zero(hi.clone() * lo.clone());
        let mid = AB::Expr::ONE - hi.clone() - lo.clone();
        let y = per[self.k].clone();
        let (qmax, lo_v) = (AB::Expr::from(fe(QMAX)), AB::Expr::from(fe(self.lo)));
        b.assert_zero(hi.clone() * (y.clone() - qmax.clone()));
        b.assert_zero(lo.clone() * (y.clone() - lo_v.clone()));
        b.assert_zero(mid.clone() * (y - q.clone()));
        let d = bits(b, &row, c.d, self.db);
        let e = bits(b, &row, c.e, EB);
        b.assert_eq(
            d,
            hi * (q.clone() - qmax.clone() - AB::Expr::ONE)
                + lo * (lo_v.clone() - AB::Expr::ONE - q.clone())
                + mid.clone() * (q.clone() - lo_v),
        );
        b.assert_eq(e, mid * (qmax - q));
    }
}

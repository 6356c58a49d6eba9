//! The gadgets both proof systems' AIRs share: bit decompositions, and the requantization-and-clamp gadget [`Rq`],
//! `y = clamp(floor((acc * M + 2^(S-1)) / 2^S), LO, 32767)`, whose main columns are `v = acc * M`; `q` as `QB` bits
//! offset by `2^(QB-1)`; the remainder as `S` bits; clamp flags `hi`, `lo`; `d` (`DB` bits) and `e` (16 bits)
//! proving the clamp case. The public layer AIRs decompose those into bits; the private instances into bytes looked
//! up in the byte table, with bits only for what is left of a field past its whole bytes ([`Range`]).
//!
//! Every quantity stays below 2^63 in magnitude, so each field identity in Goldilocks (p ~ 2^64) is an integer
//! identity: the trace proves exactly the integer executor's arithmetic.

use p3_air::AirBuilder;
use p3_field::PrimeCharacteristicRing;

use crate::Val;

/// Largest activation.
pub const QMAX: i64 = 32767;
/// Bits of the `e` range check (`QMAX - q` in the in-range case).
pub const EB: usize = 16;

/// How a gadget lays out and range-checks an `n`-bit non-negative witness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    /// `n` boolean columns (the public layer AIRs).
    Bits,
    /// `n / 8` byte columns, least significant first, each looked up in a byte table by the caller, then `n % 8`
    /// boolean columns for the top bits (the private instances: about a quarter of the columns).
    Bytes,
}

impl Range {
    /// Columns of an `n`-bit witness.
    pub fn width(self, n: usize) -> usize {
        match self {
            Range::Bits => n,
            Range::Bytes => n / 8 + n % 8,
        }
    }

    /// The byte columns of an `n`-bit witness laid out from `start`.
    pub fn bytes(self, start: usize, n: usize) -> std::ops::Range<usize> {
        match self {
            Range::Bits => start..start,
            Range::Bytes => start..start + n / 8,
        }
    }

    /// Writes `v`'s low `n` bits from `start` in this layout.
    pub fn put(self, row: &mut [Val], start: usize, n: usize, v: u128) {
        match self {
            Range::Bits => put_bits(row, start, n, v),
            Range::Bytes => {
                let l = n / 8;
                for (i, c) in row[start..start + l].iter_mut().enumerate() {
                    *c = Val::from_u64(((v >> (8 * i)) & 0xff) as u64);
                }
                put_bits(row, start + l, n % 8, v.checked_shr(8 * l as u32).unwrap_or(0));
            }
        }
    }
}

/// The requantization and clamp gadget, `y = clamp(floor((acc * M + 2^(S-1)) / 2^S), LO, QMAX)`, shared by the
/// public layer AIR and the private linear and requantization instances.
#[derive(Clone, Copy, Debug)]
pub struct Rq {
    /// Requantization shift.
    pub shift: u32,
    /// Bits of the offset quotient.
    pub qb: usize,
    /// Bits of the clamp witness `d`.
    pub db: usize,
    /// Lower clamp (0 with a fused ReLU, else -32767).
    pub lo: i64,
    /// How `q`, the remainder, `d` and `e` are range-checked.
    pub range: Range,
}

/// Column offsets of the requantization gadget.
pub struct Cols {
    /// `v = acc * M`.
    pub v: usize,
    /// First column of `q + 2^(qb-1)`.
    pub q: usize,
    /// First column of the remainder.
    pub rem: usize,
    /// Clamp flag: above.
    pub hi: usize,
    /// Clamp flag: below.
    pub lo: usize,
    /// First column of `d`.
    pub d: usize,
    /// First column of `e`.
    pub e: usize,
    /// One past the last column.
    pub end: usize,
}

/// Constrains `n` boolean columns from `start` and returns the number they spell (least significant first).
pub fn bits<AB: AirBuilder>(b: &mut AB, row: &[AB::Var], start: usize, n: usize) -> AB::Expr {
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

/// Writes `v`'s low `n` bits from `start`.
pub fn put_bits(row: &mut [Val], start: usize, n: usize, v: u128) {
    for i in 0..n {
        row[start + i] = Val::from_bool((v >> i) & 1 == 1);
    }
}

impl Rq {
    /// The gadget for a shift and a lower clamp: `|acc * M| < 2^62`, so `|q| < 2^(63-S)`.
    pub fn new(shift: u32, lo: i64) -> Self {
        let qb = 64 - shift as usize;
        Self { shift, qb, db: qb + 1, lo, range: Range::Bits }
    }

    /// The same gadget with its witnesses laid out and range-checked as `range` says.
    pub fn with_range(self, range: Range) -> Self {
        Self { range, ..self }
    }

    /// The byte columns (from `base`) a [`Range::Bytes`] gadget's caller looks up on every row it constrains.
    pub fn byte_columns(&self, base: usize) -> impl Iterator<Item = usize> + use<> {
        let (c, r) = (self.cols(base), self.range);
        [(c.q, self.qb), (c.rem, self.shift as usize), (c.d, self.db), (c.e, EB)]
            .into_iter()
            .flat_map(move |(s, n)| r.bytes(s, n))
    }

    /// Column offsets from `base`.
    pub fn cols(&self, base: usize) -> Cols {
        let v = base;
        let q = v + 1;
        let w = |n: usize| self.range.width(n);
        let rem = q + w(self.qb);
        let hi = rem + w(self.shift as usize);
        let lo = hi + 1;
        let d = lo + 1;
        let e = d + w(self.db);
        Cols { v, q, rem, hi, lo, d, e, end: e + w(EB) }
    }

    /// Constrains the gadget's columns (from `base`) to prove `y` is the requantized, clamped `acc * mult`, its
    /// witnesses as bits.
    pub fn eval<AB: AirBuilder<F = Val>>(
        &self,
        b: &mut AB,
        row: &[AB::Var],
        base: usize,
        acc: AB::Expr,
        mult: AB::Expr,
        y: AB::Expr,
    ) {
        debug_assert_eq!(self.range, Range::Bits);
        self.eval_with(b, row, base, acc, mult, y, &mut |b, start, n| bits(b, row, start, n));
    }

    /// The same, with `range(b, start, n)` constraining the `n`-bit witness laid out from column `start` and
    /// returning its value (for [`Range::Bytes`], the caller's byte lookups).
    #[allow(clippy::too_many_arguments)] // the gadget's inputs, and how it range-checks
    pub fn eval_with<AB: AirBuilder<F = Val>>(
        &self,
        b: &mut AB,
        row: &[AB::Var],
        base: usize,
        acc: AB::Expr,
        mult: AB::Expr,
        y: AB::Expr,
        range: &mut impl FnMut(&mut AB, usize, usize) -> AB::Expr,
    ) {
        let c = self.cols(base);
        let v: AB::Expr = row[c.v].into();
        b.assert_eq(v.clone(), acc * mult);

        // v + 2^(S-1) = q * 2^S + rem, q = Q - 2^(qb-1), Q < 2^qb, rem < 2^S
        let q = range(b, c.q, self.qb) - AB::Expr::from(fe(1i64 << (self.qb - 1)));
        let rem = range(b, c.rem, self.shift as usize);
        let half = if self.shift == 0 { 0 } else { 1i64 << (self.shift - 1) };
        b.assert_eq(v + AB::Expr::from(fe(half)), q.clone() * AB::Expr::from(fe(1i64 << self.shift)) + rem);

        // Clamp to [LO, QMAX].
        let hi: AB::Expr = row[c.hi].into();
        let lo: AB::Expr = row[c.lo].into();
        b.assert_bool(hi.clone());
        b.assert_bool(lo.clone());
        b.assert_zero(hi.clone() * lo.clone());
        let mid = AB::Expr::ONE - hi.clone() - lo.clone();
        let (qmax, lo_v) = (AB::Expr::from(fe(QMAX)), AB::Expr::from(fe(self.lo)));
        b.assert_zero(hi.clone() * (y.clone() - qmax.clone()));
        b.assert_zero(lo.clone() * (y.clone() - lo_v.clone()));
        b.assert_zero(mid.clone() * (y - q.clone()));
        let d = range(b, c.d, self.db);
        let e = range(b, c.e, EB);
        b.assert_eq(
            d,
            hi * (q.clone() - qmax.clone() - AB::Expr::ONE)
                + lo * (lo_v.clone() - AB::Expr::ONE - q.clone())
                + mid.clone() * (q.clone() - lo_v),
        );
        b.assert_eq(e, mid * (qmax - q));
    }

    /// Fills the gadget's columns (from `base`) for `acc * mult`; returns `y`.
    pub fn fill(&self, row: &mut [Val], base: usize, acc: i64, mult: i64) -> i64 {
        let c = self.cols(base);
        let v = i128::from(acc) * i128::from(mult);
        let half = if self.shift == 0 { 0 } else { 1i128 << (self.shift - 1) };
        let q = (v + half) >> self.shift;
        let rem = (v + half) - (q << self.shift);
        row[c.v] = fe(v as i64);
        self.range.put(row, c.q, self.qb, (q + (1i128 << (self.qb - 1))) as u128);
        self.range.put(row, c.rem, self.shift as usize, rem as u128);
        let (hi, lo) = (q > i128::from(QMAX), q < i128::from(self.lo));
        row[c.hi] = Val::from_bool(hi);
        row[c.lo] = Val::from_bool(lo);
        let d = if hi {
            q - i128::from(QMAX) - 1
        } else if lo {
            i128::from(self.lo) - 1 - q
        } else {
            q - i128::from(self.lo)
        };
        self.range.put(row, c.d, self.db, d as u128);
        self.range.put(row, c.e, EB, if hi || lo { 0 } else { (i128::from(QMAX) - q) as u128 });
        q.clamp(i128::from(self.lo), i128::from(QMAX)) as i64
    }
}

/// A signed integer as a field element.
pub fn fe(v: i64) -> Val {
    if v >= 0 { Val::from_u64(v as u64) } else { -Val::from_u64(v.unsigned_abs()) }
}

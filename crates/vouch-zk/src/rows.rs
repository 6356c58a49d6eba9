//! The row layout of a linear layer (Dense, Conv, and pooling windows): per output, its input taps (`None` for
//! padding), weights, bias and multiplier. Both proof systems build their linear instances from it.

use p3_field::PrimeCharacteristicRing;
use p3_matrix::dense::RowMajorMatrix;
use vouch_quant::QLayer;

use crate::Val;
use crate::gadget::{QMAX, Rq, fe};
use crate::public::air::LayerAir;

/// One linear layer's rows: taps, weights, bias and multiplier per output.
#[derive(Clone, Debug)]
pub(crate) struct LinearRows {
    pub(crate) k: usize,
    pub(crate) lo: i64,
    pub(crate) shift: u32,
    pub(crate) rows: usize,
    /// `rows * k` input indices (`None` = zero padding).
    pub(crate) taps: Vec<Option<usize>>,
    /// `rows * k` weights.
    pub(crate) w: Vec<i64>,
    pub(crate) bias: Vec<i64>,
    pub(crate) mult: Vec<i64>,
}

pub(crate) fn linear_rows(layer: &QLayer, in_shape: &[usize]) -> Option<LinearRows> {
    match layer {
        QLayer::Dense { w, b, input, output, rq, relu } => Some(LinearRows {
            k: *input,
            lo: if *relu { 0 } else { -QMAX },
            shift: rq.first().map(|r| r.shift).unwrap_or(0),
            rows: *output,
            taps: (0..*output).flat_map(|_| (0..*input).map(Some)).collect(),
            w: (0..input * output).map(|i| w.get(i).map(|v| i64::from(*v)).unwrap_or(0)).collect(),
            bias: (0..*output).map(|o| b.get(o).copied().unwrap_or(0)).collect(),
            mult: (0..*output).map(|o| rq.get(o).map(|r| r.mult).unwrap_or(0)).collect(),
        }),
        QLayer::Conv { w, b, ic, oc, geo, rq, relu } => {
            let (h, wd) = (in_shape[2], in_shape[3]);
            let (oh, ow) = geo.out_hw(h, wd)?;
            let k = ic * geo.kernel[0] * geo.kernel[1];
            let rows = oc * oh * ow;
            let mut taps = Vec::with_capacity(rows * k);
            let mut ws = Vec::with_capacity(rows * k);
            let (mut bias, mut mult) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
            for o in 0..*oc {
                for oy in 0..oh {
                    for ox in 0..ow {
                        for c in 0..*ic {
                            for ky in 0..geo.kernel[0] {
                                for kx in 0..geo.kernel[1] {
                                    taps.push(geo.tap(h, wd, oy, ox, ky, kx).map(|t| c * h * wd + t));
                                    let wi = ((o * ic + c) * geo.kernel[0] + ky) * geo.kernel[1] + kx;
                                    ws.push(w.get(wi).map(|v| i64::from(*v)).unwrap_or(0));
                                }
                            }
                        }
                        bias.push(b.get(o).copied().unwrap_or(0));
                        mult.push(rq.get(o).map(|r| r.mult).unwrap_or(0));
                    }
                }
            }
            Some(LinearRows {
                k,
                lo: if *relu { 0 } else { -QMAX },
                shift: rq.first().map(|r| r.shift).unwrap_or(0),
                rows,
                taps,
                w: ws,
                bias,
                mult,
            })
        }
        _ => None,
    }
}

/// Trace height of a public layer proof.
pub(crate) fn height(rows: usize) -> usize {
    rows.next_power_of_two().max(8)
}

impl LinearRows {
    pub(crate) fn rq(&self) -> Rq {
        Rq::new(self.shift, self.lo)
    }

    pub(crate) fn air(&self, x: &[i16], y: &[i16], with_params: bool) -> LayerAir {
        let h = height(self.rows);
        let dense = self.taps.chunks(self.k).all(|t| t.iter().enumerate().all(|(i, v)| *v == Some(i)));
        let mut periodic: Vec<Vec<Val>> = (0..self.k)
            .map(|t| {
                if dense {
                    vec![fe(i64::from(x[t]))]
                } else {
                    (0..h)
                        .map(|r| {
                            if r < self.rows {
                                self.taps[r * self.k + t].map(|i| fe(i64::from(x[i]))).unwrap_or(Val::ZERO)
                            } else {
                                Val::ZERO
                            }
                        })
                        .collect()
                }
            })
            .collect();
        periodic.push((0..h).map(|r| if r < self.rows { fe(i64::from(y[r])) } else { Val::ZERO }).collect());
        let prep = with_params.then(|| {
            let mut vals = Vec::with_capacity(h * (self.k + 2));
            for r in 0..h {
                if r < self.rows {
                    vals.extend(self.w[r * self.k..(r + 1) * self.k].iter().map(|v| fe(*v)));
                    vals.push(fe(self.bias[r]));
                    vals.push(fe(self.mult[r]));
                } else {
                    vals.extend(std::iter::repeat_n(Val::ZERO, self.k + 2));
                }
            }
            RowMajorMatrix::new(vals, self.k + 2)
        });
        LayerAir { k: self.k, rq: self.rq(), periodic, prep }
    }

    pub(crate) fn trace(&self, air: &LayerAir, x: &[i16]) -> RowMajorMatrix<Val> {
        let width = air.rq.cols(0).end;
        let h = height(self.rows);
        let mut vals = vec![Val::ZERO; h * width];
        for (r, row) in vals.chunks_mut(width).enumerate() {
            let (acc, mult) = if r < self.rows { (self.acc(r, x), self.mult[r]) } else { (0, 0) };
            air.rq.fill(row, 0, acc, mult);
        }
        RowMajorMatrix::new(vals, width)
    }

    /// Row `r`'s accumulator `b + sum w x`.
    pub(crate) fn acc(&self, r: usize, x: &[i16]) -> i64 {
        self.bias[r]
            + (0..self.k)
                .map(|t| self.w[r * self.k + t] * self.taps[r * self.k + t].map(|i| i64::from(x[i])).unwrap_or(0))
                .sum::<i64>()
    }
}

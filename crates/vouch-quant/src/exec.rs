//! The quantized graph and its integer executor: the one definition of a zk model's result.
//!
//! Activations are int16 in `[-32767, 32767]` (symmetric; ReLU layers clamp at 0). Accumulators are i64;
//! requantization multiplies by a multiplier below 2^31 and shifts right with rounding half up,
//! `floor((v + 2^(S-1)) / 2^S)` (the product is formed in i128 and bounded at quantization time to fit 2^62).
//! Half up rather than half away from zero (DESIGN.md's wording) because it is one division with a
//! range-checked remainder in the proof, with no sign case; the two differ only on exact negative ties.
//! Every linear layer uses one shift for all its channels, so the proof has one remainder width per layer.
//! Every step is integer arithmetic, so any two executions agree bit for bit.

use serde::{Deserialize, Serialize};

use crate::QuantError;
use crate::float::Pool;

/// Largest activation magnitude.
pub const QMAX: i64 = 32767;
/// Fixed-point bits of softmax's exp table.
pub const EXP_BITS: u32 = 20;
/// Entries of a Sigmoid/Tanh table indexed by the activation itself (`x + 32767`), as the first versions wrote
/// them (still executed as such, so their receipts keep verifying).
pub const TABLE_DIRECT: usize = 65_535;
/// Activation bits a bucketed table drops: it has one entry per 16 consecutive activation values.
pub const TABLE_SHIFT: u32 = 4;
/// Entries of a bucketed table.
pub const TABLE_BUCKETS: usize = 4_096;

/// The entry of a Sigmoid/Tanh table of `len` entries that activation `x` reads: `x + 32767` for a direct table,
/// `(x + 32767) >> 4` for a bucketed one.
pub fn table_index(len: usize, x: i16) -> usize {
    let k = (i64::from(x) + QMAX) as usize;
    if len == TABLE_DIRECT { k } else { k >> TABLE_SHIFT }
}

/// `floor((v + 2^(shift-1)) / 2^shift)`: `v / 2^shift` rounded to nearest, halves up.
pub fn rshift_round(v: i128, shift: u32) -> i128 {
    if shift == 0 {
        return v;
    }
    (v + (1i128 << (shift - 1))) >> shift
}

/// `y = round(acc * mult / 2^shift)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requant {
    /// Multiplier, `0 <= mult < 2^31`.
    pub mult: i64,
    /// Right shift.
    pub shift: u32,
}

impl Requant {
    /// Applies the requantization and clamps to `[lo, QMAX]`.
    pub fn apply(&self, acc: i64, lo: i64) -> i16 {
        let v = rshift_round(i128::from(acc) * i128::from(self.mult), self.shift);
        v.clamp(i128::from(lo), i128::from(QMAX)) as i16
    }
}

/// One integer layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum QLayer {
    /// `y[o] = requant_o(b[o] + sum_i w[o][i] x[i])`, clamped at 0 when `relu`.
    Dense {
        /// Weights, `out x in`, within `weight_bits` (int8 or int16 range).
        w: Vec<i16>,
        /// Bias at the accumulator's scale.
        b: Vec<i64>,
        /// Input features.
        input: usize,
        /// Output features.
        output: usize,
        /// Per-output requantization.
        rq: Vec<Requant>,
        /// Fused ReLU.
        relu: bool,
    },
    /// Convolution (NCHW, group 1), as Dense per output position.
    Conv {
        /// Weights `[oc][ic][kh][kw]`, within `weight_bits`.
        w: Vec<i16>,
        /// Bias at the accumulator's scale.
        b: Vec<i64>,
        /// Input channels.
        ic: usize,
        /// Output channels.
        oc: usize,
        /// Geometry.
        geo: Pool,
        /// Per-output-channel requantization.
        rq: Vec<Requant>,
        /// Fused ReLU.
        relu: bool,
    },
    /// `max(x, 0)`.
    Relu,
    /// Max over each window (same scale in and out).
    MaxPool(Pool),
    /// Sum over each window, requantized by the number of taps (`rq_by_count[taps - 1]`).
    AvgPool {
        /// Geometry.
        geo: Pool,
        /// Requantization for each possible tap count.
        rq_by_count: Vec<Requant>,
    },
    /// `y[i] = round((x[i] * mul[i] + add[i]) / 2^shift)`.
    Affine {
        /// Multipliers.
        mul: Vec<i64>,
        /// Addends.
        add: Vec<i64>,
        /// Shift.
        shift: u32,
    },
    /// `y = table[(x + 32767) >> 4]` (sigmoid, tanh; output scale 1/32767): one entry per 16 activation values, the
    /// function at the bucket's centre. A table of [`TABLE_DIRECT`] entries is read at `x + 32767` instead.
    Lookup {
        /// [`TABLE_BUCKETS`] (or [`TABLE_DIRECT`]) entries.
        table: Vec<i16>,
    },
    /// Softmax over the last axis: `e = exp_table[max - x]`, `y = round(32767 * e / sum(e))`.
    Softmax {
        /// `round(exp(-d * scale_in) * 2^EXP_BITS)` for `d` in `0..=65534`.
        exp: Vec<u32>,
    },
    /// Same data, new shape.
    Reshape(Vec<usize>),
}

/// A quantized model: layers, activation shapes and scales.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QGraph {
    /// Bits of the weights (8, or 16 where int8 loses the argmax).
    pub weight_bits: u32,
    /// Shape of the input and of each layer's output.
    pub shapes: Vec<Vec<usize>>,
    /// Real value of one unit of each activation (input first).
    pub scales: Vec<f64>,
    /// The layers.
    pub layers: Vec<QLayer>,
}

impl QGraph {
    /// Quantizes a float input: `clamp(round(x / scale))`, halves away from zero.
    pub fn quantize_input(&self, x: &[f32]) -> Vec<i16> {
        let s = self.scales[0];
        x.iter().map(|v| (f64::from(*v) / s).round().clamp(-(QMAX as f64), QMAX as f64) as i16).collect()
    }

    /// The real values of an output.
    pub fn dequantize_output(&self, y: &[i16]) -> Vec<f32> {
        let s = *self.scales.last().expect("at least the input scale");
        y.iter().map(|v| (f64::from(*v) * s) as f32).collect()
    }

    /// Runs the integer graph; returns every activation (input first, output last).
    pub fn run_all(&self, x: &[i16]) -> Result<Vec<Vec<i16>>, QuantError> {
        let expected: usize = self.shapes[0].iter().product();
        if x.len() != expected {
            return Err(QuantError::InputSize { expected, found: x.len() });
        }
        let mut acts = vec![x.to_vec()];
        for (i, layer) in self.layers.iter().enumerate() {
            let y = int_layer(layer, &self.shapes[i], &acts[i]);
            acts.push(y);
        }
        Ok(acts)
    }

    /// Runs the integer graph; returns the output.
    pub fn run(&self, x: &[i16]) -> Result<Vec<i16>, QuantError> {
        Ok(self.run_all(x)?.pop().expect("at least the input"))
    }
}

fn int_layer(layer: &QLayer, shape: &[usize], x: &[i16]) -> Vec<i16> {
    match layer {
        QLayer::Dense { w, b, input, output, rq, relu } => {
            let lo = if *relu { 0 } else { -QMAX };
            (0..*output)
                .map(|o| {
                    let row = &w[o * input..(o + 1) * input];
                    let acc = b[o] + row.iter().zip(x).map(|(a, b)| i64::from(*a) * i64::from(*b)).sum::<i64>();
                    rq[o].apply(acc, lo)
                })
                .collect()
        }
        QLayer::Conv { w, b, ic, oc, geo, rq, relu } => {
            let lo = if *relu { 0 } else { -QMAX };
            let (h, wd) = (shape[2], shape[3]);
            let (oh, ow) = geo.out_hw(h, wd).expect("checked at parse");
            let mut y = vec![0i16; oc * oh * ow];
            for o in 0..*oc {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = b[o];
                        for c in 0..*ic {
                            for ky in 0..geo.kernel[0] {
                                for kx in 0..geo.kernel[1] {
                                    let Some(t) = geo.tap(h, wd, oy, ox, ky, kx) else { continue };
                                    let wv = w[((o * ic + c) * geo.kernel[0] + ky) * geo.kernel[1] + kx];
                                    acc += i64::from(wv) * i64::from(x[c * h * wd + t]);
                                }
                            }
                        }
                        y[(o * oh + oy) * ow + ox] = rq[o].apply(acc, lo);
                    }
                }
            }
            y
        }
        QLayer::Relu => x.iter().map(|v| (*v).max(0)).collect(),
        QLayer::MaxPool(geo) => pool(shape, x, geo, |vals| vals.iter().copied().max().unwrap_or(0)),
        QLayer::AvgPool { geo, rq_by_count } => pool(shape, x, geo, |vals| {
            let sum: i64 = vals.iter().map(|v| i64::from(*v)).sum();
            match vals.len() {
                0 => 0,
                n => rq_by_count[n - 1].apply(sum, -QMAX),
            }
        }),
        QLayer::Affine { mul, add, shift } => x
            .iter()
            .zip(mul.iter().zip(add))
            .map(|(v, (m, a))| {
                rshift_round(i128::from(*v) * i128::from(*m) + i128::from(*a), *shift)
                    .clamp(-i128::from(QMAX), i128::from(QMAX)) as i16
            })
            .collect(),
        QLayer::Lookup { table } => x.iter().map(|v| table[table_index(table.len(), *v)]).collect(),
        QLayer::Softmax { exp } => {
            let last = (*shape.last().unwrap_or(&1)).max(1);
            x.chunks(last)
                .flat_map(|row| {
                    let m = row.iter().copied().max().unwrap_or(0);
                    let e: Vec<i64> =
                        row.iter().map(|v| i64::from(exp[(i64::from(m) - i64::from(*v)) as usize])).collect();
                    let sum: i64 = e.iter().sum::<i64>().max(1);
                    // round(QMAX * e / sum), halves up (everything is non-negative).
                    e.into_iter().map(move |ei| ((2 * QMAX * ei + sum) / (2 * sum)) as i16)
                })
                .collect()
        }
        QLayer::Reshape(_) => x.to_vec(),
    }
}

fn pool(shape: &[usize], x: &[i16], geo: &Pool, f: impl Fn(&[i16]) -> i16) -> Vec<i16> {
    let (c, h, w) = (shape[1], shape[2], shape[3]);
    let (oh, ow) = geo.out_hw(h, w).expect("checked at parse");
    let mut y = vec![0i16; c * oh * ow];
    let mut vals = Vec::with_capacity(geo.kernel[0] * geo.kernel[1]);
    for ch in 0..c {
        let plane = &x[ch * h * w..(ch + 1) * h * w];
        geo.windows(h, w, |o, taps| {
            vals.clear();
            vals.extend(taps.iter().map(|t| plane[*t]));
            y[ch * oh * ow + o] = f(&vals);
        });
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_to_nearest_with_halves_up() {
        assert_eq!(rshift_round(3, 1), 2); // 1.5 -> 2
        assert_eq!(rshift_round(-3, 1), -1); // -1.5 -> -1
        assert_eq!(rshift_round(5, 2), 1); // 1.25 -> 1
        assert_eq!(rshift_round(6, 2), 2); // 1.5 -> 2
        assert_eq!(rshift_round(-6, 2), -1); // -1.5 -> -1
        assert_eq!(rshift_round(-7, 2), -2); // -1.75 -> -2
        assert_eq!(rshift_round(-5, 2), -1); // -1.25 -> -1
        assert_eq!(rshift_round(7, 0), 7);
    }

    #[test]
    fn requant_clamps_and_fuses_relu() {
        let rq = Requant { mult: 1 << 20, shift: 20 };
        assert_eq!(rq.apply(40_000, -QMAX), 32767);
        assert_eq!(rq.apply(-40_000, -QMAX), -32767);
        assert_eq!(rq.apply(-5, 0), 0);
        assert_eq!(rq.apply(5, 0), 5);
    }
}

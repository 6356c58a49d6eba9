//! Calibration and quantization: float graph + calibration inputs -> integer graph, with an accuracy report.

use serde::{Deserialize, Serialize};

use crate::QuantError;
use crate::exec::{EXP_BITS, QGraph, QLayer, QMAX, Requant, TABLE_BUCKETS, TABLE_SHIFT};
use crate::float::{FloatGraph, FloatLayer};

/// Quantized weights, biases and per-row requantization of one linear layer.
type QuantizedLinear = (Vec<i16>, Vec<i64>, Vec<Requant>);

/// How the integer graph compares with the float model on the calibration set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Bits of the weights chosen (8, or 16 when int8 changed the argmax too often).
    pub weight_bits: u32,
    /// Calibration inputs used.
    pub samples: usize,
    /// Fraction of inputs whose output argmax is the same (1.0 = all).
    pub argmax_agreement: f64,
    /// Largest absolute error of any output element (dequantized).
    pub max_abs_error: f64,
    /// Mean absolute error over all output elements.
    pub mean_abs_error: f64,
}

impl Report {
    /// Whether the argmax changes on at most 1% of the calibration inputs (the default acceptance rule).
    pub fn acceptable(&self) -> bool {
        self.argmax_agreement >= 0.99
    }
}

fn scale_of(max_abs: f64) -> f64 {
    if max_abs > 0.0 { max_abs / QMAX as f64 } else { 1.0 / QMAX as f64 }
}

/// The largest shift (up to 62) whose multiplier stays below 2^31 and whose product with the worst-case
/// accumulator stays below 2^62.
fn requant_for(real: f64, bound: i128, layer: usize) -> Result<Requant, QuantError> {
    if !(real.is_finite() && real >= 0.0) {
        return Err(QuantError::Calibration(format!("layer {layer}: non-finite rescale factor {real}")));
    }
    for shift in (0..=62u32).rev() {
        let mult = (real * 2f64.powi(shift as i32)).round();
        if mult < 2f64.powi(31) && (mult as i128) * bound.max(1) < (1i128 << 62) {
            return Ok(Requant { mult: mult as i64, shift });
        }
    }
    Err(QuantError::Overflow { layer, bound })
}

/// Requantizations of several channels sharing the largest shift that suits them all.
fn common_requant(reals: &[f64], bounds: &[i128], layer: usize) -> Result<Vec<Requant>, QuantError> {
    let per: Vec<Requant> =
        reals.iter().zip(bounds).map(|(r, b)| requant_for(*r, *b, layer)).collect::<Result<_, _>>()?;
    let shift = per.iter().map(|r| r.shift).min().unwrap_or(0);
    Ok(reals.iter().map(|r| Requant { mult: (r * 2f64.powi(shift as i32)).round() as i64, shift }).collect())
}

/// Per-output-channel symmetric weights of `bits` bits.
fn weights_q(w: &[f32], rows: usize, bits: u32) -> (Vec<i16>, Vec<f64>) {
    let qmax = f64::from((1u32 << (bits - 1)) - 1);
    let per = w.len() / rows.max(1);
    let mut q = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(rows);
    for r in 0..rows {
        let row = &w[r * per..(r + 1) * per];
        let m = row.iter().fold(0f64, |a, v| a.max(f64::from(v.abs())));
        let s = if m > 0.0 { m / qmax } else { 1.0 };
        scales.push(s);
        q.extend(row.iter().map(|v| (f64::from(*v) / s).round().clamp(-qmax, qmax) as i16));
    }
    (q, scales)
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold((0, f32::NEG_INFINITY), |(bi, bv), (i, x)| if *x > bv { (i, *x) } else { (bi, bv) }).0
}

/// Quantizes `g` with the activation ranges seen on `calibration` (float inputs, each the input's size),
/// and reports accuracy on the same inputs. Weights are int8 unless that changes the argmax on more than 1%
/// of the calibration inputs, in which case they are int16.
pub fn quantize(g: &FloatGraph, calibration: &[Vec<f32>]) -> Result<(QGraph, Report), QuantError> {
    let (q, report) = quantize_with(g, calibration, 8)?;
    if report.acceptable() {
        return Ok((q, report));
    }
    quantize_with(g, calibration, 16)
}

/// [`quantize`] with a fixed weight width (8 or 16 bits).
pub fn quantize_with(
    g: &FloatGraph,
    calibration: &[Vec<f32>],
    weight_bits: u32,
) -> Result<(QGraph, Report), QuantError> {
    if !matches!(weight_bits, 8 | 16) {
        return Err(QuantError::Calibration(format!("weight bits must be 8 or 16, not {weight_bits}")));
    }
    if calibration.is_empty() {
        return Err(QuantError::Calibration("no calibration inputs".into()));
    }
    let n_in: usize = g.shapes[0].iter().product();
    if let Some(bad) = calibration.iter().find(|x| x.len() != n_in) {
        return Err(QuantError::InputSize { expected: n_in, found: bad.len() });
    }
    // Activation ranges over the calibration set.
    let mut max_abs = vec![0f64; g.layers.len() + 1];
    let mut float_outputs = Vec::with_capacity(calibration.len());
    for x in calibration {
        let acts = g.run_all(x);
        for (m, a) in max_abs.iter_mut().zip(&acts) {
            *m = a.iter().fold(*m, |m, v| if v.is_finite() { m.max(f64::from(v.abs())) } else { m });
        }
        float_outputs.push(acts.last().expect("output").clone());
    }
    // Scales: a ReLU right after a Dense/Conv is fused, so that layer's output takes the ReLU's (tighter) range.
    let mut scales: Vec<f64> = max_abs.iter().map(|m| scale_of(*m)).collect();
    for (i, layer) in g.layers.iter().enumerate() {
        let out = i + 1;
        match layer {
            FloatLayer::Relu | FloatLayer::MaxPool(_) | FloatLayer::Reshape(_) => scales[out] = scales[i],
            FloatLayer::Sigmoid | FloatLayer::Tanh | FloatLayer::Softmax => scales[out] = 1.0 / QMAX as f64,
            _ => {}
        }
        if matches!(layer, FloatLayer::Dense { .. } | FloatLayer::Conv { .. })
            && matches!(g.layers.get(i + 1), Some(FloatLayer::Relu))
        {
            scales[out] = scale_of(max_abs[out + 1]);
            scales[out + 1] = scales[out];
        }
    }

    let mut layers = Vec::with_capacity(g.layers.len());
    for (i, layer) in g.layers.iter().enumerate() {
        let (s_in, s_out) = (scales[i], scales[i + 1]);
        let fused_relu = matches!(g.layers.get(i + 1), Some(FloatLayer::Relu));
        let linear = |w: &[f32], b: &[f32], rows: usize| -> Result<QuantizedLinear, QuantError> {
            let (wq, ws) = weights_q(w, rows, weight_bits);
            let per = w.len() / rows.max(1);
            let mut bq = Vec::with_capacity(rows);
            let mut reals = Vec::with_capacity(rows);
            let mut bounds = Vec::with_capacity(rows);
            for r in 0..rows {
                let acc_scale = ws[r] * s_in;
                let bias = (f64::from(b[r]) / acc_scale).round() as i64;
                let bound = wq[r * per..(r + 1) * per].iter().map(|v| i128::from(v.unsigned_abs())).sum::<i128>()
                    * i128::from(QMAX)
                    + i128::from(bias.unsigned_abs());
                bq.push(bias);
                reals.push(acc_scale / s_out);
                bounds.push(bound);
            }
            Ok((wq, bq, common_requant(&reals, &bounds, i)?))
        };
        let q = match layer {
            FloatLayer::Dense { w, b, input, output } => {
                let (w, b, rq) = linear(w, b, *output)?;
                QLayer::Dense { w, b, input: *input, output: *output, rq, relu: fused_relu }
            }
            FloatLayer::Conv { w, b, ic, oc, geo } => {
                let (w, b, rq) = linear(w, b, *oc)?;
                QLayer::Conv { w, b, ic: *ic, oc: *oc, geo: geo.clone(), rq, relu: fused_relu }
            }
            // Fused into the preceding linear layer's clamp; kept as an exact no-op-on-nonnegatives layer
            // so activation indices line up with the float graph.
            FloatLayer::Relu => QLayer::Relu,
            FloatLayer::MaxPool(geo) => QLayer::MaxPool(geo.clone()),
            FloatLayer::AvgPool { geo, count_include_pad } => {
                let full = geo.kernel[0] * geo.kernel[1];
                let reals: Vec<f64> =
                    (1..=full).map(|n| s_in / ((if *count_include_pad { full } else { n }) as f64 * s_out)).collect();
                let rq_by_count = common_requant(&reals, &vec![i128::from(QMAX) * full as i128; full], i)?;
                QLayer::AvgPool { geo: geo.clone(), rq_by_count }
            }
            FloatLayer::Affine { mul, add } => {
                let worst = mul.iter().fold(0f64, |a, m| a.max((f64::from(*m) * s_in / s_out).abs()));
                let shift = (0..=30u32).rev().find(|s| worst * 2f64.powi(*s as i32) < 2f64.powi(31)).unwrap_or(0);
                let k = 2f64.powi(shift as i32);
                QLayer::Affine {
                    mul: mul.iter().map(|m| (f64::from(*m) * s_in / s_out * k).round() as i64).collect(),
                    add: add.iter().map(|a| (f64::from(*a) / s_out * k).round() as i64).collect(),
                    shift,
                }
            }
            FloatLayer::Sigmoid | FloatLayer::Tanh => {
                let f = |x: f64| {
                    if matches!(layer, FloatLayer::Sigmoid) { 1.0 / (1.0 + (-x).exp()) } else { x.tanh() }
                };
                // One entry per 16 activation values, the function at the bucket's centre: a table a sixteenth the
                // size (what a private proof commits and looks up), at most half a bucket of input error.
                let width = f64::from(1u32 << TABLE_SHIFT);
                let table = (0..TABLE_BUCKETS)
                    .map(|i| {
                        let centre = i as f64 * width + (width - 1.0) / 2.0 - QMAX as f64;
                        (f(centre * s_in) / s_out).round().clamp(-(QMAX as f64), QMAX as f64) as i16
                    })
                    .collect();
                QLayer::Lookup { table }
            }
            FloatLayer::Softmax => {
                let exp = (0..=2 * QMAX)
                    .map(|d| ((-(d as f64) * s_in).exp() * f64::from(1u32 << EXP_BITS)).round() as u32)
                    .collect();
                QLayer::Softmax { exp }
            }
            FloatLayer::Reshape(s) => QLayer::Reshape(s.clone()),
        };
        layers.push(q);
    }
    let qg = QGraph { weight_bits, shapes: g.shapes.clone(), scales, layers };

    // Accuracy on the calibration set.
    let (mut agree, mut max_err, mut sum_err, mut count) = (0usize, 0f64, 0f64, 0usize);
    for (x, want) in calibration.iter().zip(&float_outputs) {
        let got = qg.dequantize_output(&qg.run(&qg.quantize_input(x))?);
        if argmax(&got) == argmax(want) {
            agree += 1;
        }
        for (a, b) in got.iter().zip(want) {
            let e = f64::from((a - b).abs());
            max_err = max_err.max(e);
            sum_err += e;
            count += 1;
        }
    }
    let report = Report {
        weight_bits,
        samples: calibration.len(),
        argmax_agreement: agree as f64 / calibration.len() as f64,
        max_abs_error: max_err,
        mean_abs_error: sum_err / count.max(1) as f64,
    };
    Ok((qg, report))
}

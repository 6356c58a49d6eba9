//! The float model as a chain of layers, and its reference executor (used for calibration and accuracy).

use serde::{Deserialize, Serialize};

/// Pooling geometry over the two spatial axes of an NCHW activation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Strides.
    pub stride: [usize; 2],
    /// Pads: top, left, bottom, right.
    pub pads: [usize; 4],
}

impl Pool {
    /// Output height and width for an input of `h x w`.
    pub fn out_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let ph = h + self.pads[0] + self.pads[2];
        let pw = w + self.pads[1] + self.pads[3];
        if ph < self.kernel[0] || pw < self.kernel[1] || self.stride[0] == 0 || self.stride[1] == 0 {
            return None;
        }
        Some(((ph - self.kernel[0]) / self.stride[0] + 1, (pw - self.kernel[1]) / self.stride[1] + 1))
    }

    /// The in-plane input index (`y * w + x`) that kernel tap `(ky, kx)` of output `(oy, ox)` reads from an
    /// `h x w` plane, or `None` where the tap falls in the padding.
    pub fn tap(&self, h: usize, w: usize, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<usize> {
        let y = (oy * self.stride[0] + ky).checked_sub(self.pads[0])?;
        let x = (ox * self.stride[1] + kx).checked_sub(self.pads[1])?;
        (y < h && x < w).then_some(y * w + x)
    }

    /// Calls `f(out_index, input_indices_in_window)` for every output position of one channel plane;
    /// padded taps are left out of the list.
    pub(crate) fn windows(&self, h: usize, w: usize, mut f: impl FnMut(usize, &[usize])) {
        let (oh, ow) = self.out_hw(h, w).expect("geometry checked at parse");
        let mut taps = Vec::with_capacity(self.kernel[0] * self.kernel[1]);
        for oy in 0..oh {
            for ox in 0..ow {
                taps.clear();
                for ky in 0..self.kernel[0] {
                    for kx in 0..self.kernel[1] {
                        taps.extend(self.tap(h, w, oy, ox, ky, kx));
                    }
                }
                f(oy * ow + ox, &taps);
            }
        }
    }
}

/// One float layer. Activations are row-major; `shape` in [`FloatGraph`] tracks them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FloatLayer {
    /// `y[o] = b[o] + sum_i w[o][i] x[i]` (weights stored `[out][in]`).
    Dense {
        /// Weights, `out x in`.
        w: Vec<f32>,
        /// Bias, `out`.
        b: Vec<f32>,
        /// Input features.
        input: usize,
        /// Output features.
        output: usize,
    },
    /// 2-D convolution, NCHW, group 1, dilation 1 (weights `[oc][ic][kh][kw]`).
    Conv {
        /// Weights.
        w: Vec<f32>,
        /// Bias, `oc`.
        b: Vec<f32>,
        /// Input channels.
        ic: usize,
        /// Output channels.
        oc: usize,
        /// Geometry (kernel, stride, pads).
        geo: Pool,
    },
    /// `max(x, 0)`.
    Relu,
    /// Max pooling (padding never wins).
    MaxPool(Pool),
    /// Average pooling; the divisor is the full window when `count_include_pad`, else the taps inside.
    AvgPool {
        /// Geometry.
        geo: Pool,
        /// ONNX `count_include_pad`.
        count_include_pad: bool,
    },
    /// `y = x * mul + add`, element-wise with both broadcast to the activation's size.
    Affine {
        /// Multipliers (one per element).
        mul: Vec<f32>,
        /// Addends (one per element).
        add: Vec<f32>,
    },
    /// Logistic sigmoid.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// Softmax over the last axis.
    Softmax,
    /// A new shape for the same row-major data (Flatten, Reshape).
    Reshape(Vec<usize>),
}

/// A float model as a chain: one input, layers applied in order, one output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FloatGraph {
    /// Input name.
    pub input: String,
    /// Output name.
    pub output: String,
    /// Shape of the input and of each layer's output (`shapes.len() == layers.len() + 1`).
    pub shapes: Vec<Vec<usize>>,
    /// The layers.
    pub layers: Vec<FloatLayer>,
}

impl FloatGraph {
    /// Runs the graph; returns every activation (input first, output last).
    pub fn run_all(&self, x: &[f32]) -> Vec<Vec<f32>> {
        let mut acts = vec![x.to_vec()];
        for (i, layer) in self.layers.iter().enumerate() {
            let y = float_layer(layer, &self.shapes[i], &acts[i]);
            acts.push(y);
        }
        acts
    }

    /// Runs the graph; returns the output.
    pub fn run(&self, x: &[f32]) -> Vec<f32> {
        self.run_all(x).pop().expect("at least the input")
    }
}

fn float_layer(layer: &FloatLayer, shape: &[usize], x: &[f32]) -> Vec<f32> {
    match layer {
        FloatLayer::Dense { w, b, input, output } => (0..*output)
            .map(|o| {
                let row = &w[o * input..(o + 1) * input];
                b[o] + row.iter().zip(x).map(|(a, b)| a * b).sum::<f32>()
            })
            .collect(),
        FloatLayer::Conv { w, b, ic, oc, geo } => {
            let (h, wd) = (shape[2], shape[3]);
            let (oh, ow) = geo.out_hw(h, wd).expect("checked");
            let mut y = vec![0f32; oc * oh * ow];
            for o in 0..*oc {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = b[o];
                        for c in 0..*ic {
                            for ky in 0..geo.kernel[0] {
                                for kx in 0..geo.kernel[1] {
                                    let Some(t) = geo.tap(h, wd, oy, ox, ky, kx) else { continue };
                                    let wv = w[((o * ic + c) * geo.kernel[0] + ky) * geo.kernel[1] + kx];
                                    acc += wv * x[c * h * wd + t];
                                }
                            }
                        }
                        y[(o * oh + oy) * ow + ox] = acc;
                    }
                }
            }
            y
        }
        FloatLayer::Relu => x.iter().map(|v| v.max(0.0)).collect(),
        FloatLayer::MaxPool(geo) => {
            pool(shape, x, geo, |vals, _| vals.iter().copied().fold(f32::NEG_INFINITY, f32::max))
        }
        FloatLayer::AvgPool { geo, count_include_pad } => pool(shape, x, geo, |vals, full| {
            let n = if *count_include_pad { full } else { vals.len() };
            vals.iter().sum::<f32>() / n as f32
        }),
        FloatLayer::Affine { mul, add } => x.iter().zip(mul).zip(add).map(|((v, m), a)| v * m + a).collect(),
        FloatLayer::Sigmoid => x.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect(),
        FloatLayer::Tanh => x.iter().map(|v| v.tanh()).collect(),
        FloatLayer::Softmax => {
            let last = *shape.last().unwrap_or(&1);
            x.chunks(last.max(1))
                .flat_map(|row| {
                    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let e: Vec<f32> = row.iter().map(|v| (v - m).exp()).collect();
                    let s: f32 = e.iter().sum();
                    e.into_iter().map(move |v| v / s)
                })
                .collect()
        }
        FloatLayer::Reshape(_) => x.to_vec(),
    }
}

fn pool(shape: &[usize], x: &[f32], geo: &Pool, f: impl Fn(&[f32], usize) -> f32) -> Vec<f32> {
    let (c, h, w) = (shape[1], shape[2], shape[3]);
    let (oh, ow) = geo.out_hw(h, w).expect("checked");
    let full = geo.kernel[0] * geo.kernel[1];
    let mut y = vec![0f32; c * oh * ow];
    let mut vals = Vec::with_capacity(full);
    for ch in 0..c {
        let plane = &x[ch * h * w..(ch + 1) * h * w];
        geo.windows(h, w, |o, taps| {
            vals.clear();
            vals.extend(taps.iter().map(|t| plane[*t]));
            y[ch * oh * ow + o] = f(&vals, full);
        });
    }
    y
}

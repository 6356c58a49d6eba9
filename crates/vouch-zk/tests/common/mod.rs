//! Shared test inputs for the property tests of both proof systems: random Dense(+ReLU) layers and random CNNs and
//! MLPs within the private op set.
#![allow(dead_code)] // each test binary uses part of this module

use std::path::PathBuf;

use proptest::prelude::*;
use vouch_quant::{FloatGraph, FloatLayer, Pool, QGraph};

/// A shared bench model's file.
pub fn bench(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/bench/models").join(format!("{name}.onnx"))
}

/// A bench model quantized on 16 seeded calibration inputs, and a seeded input to prove.
pub fn bench_model(name: &str) -> (QGraph, Vec<i16>) {
    let g = vouch_quant::parse(&std::fs::read(bench(name)).unwrap()).unwrap();
    let n: usize = g.shapes[0].iter().product();
    let (q, _) = vouch_quant::quantize(&g, &vouch_quant::seeded_inputs(n, 16, 1)).unwrap();
    let x = q.quantize_input(&vouch_quant::seeded_inputs(n, 1, 9)[0]);
    (q, x)
}

/// A random Dense layer with up to `max_in - 1` inputs and 5 outputs, optionally followed by a ReLU; its
/// calibration inputs (the first is the one to prove); and an output index with a ±1 perturbation.
pub fn dense_case(max_in: usize) -> impl Strategy<Value = (FloatGraph, Vec<Vec<f32>>, (usize, i16))> {
    (1usize..max_in, 1usize..6, any::<bool>()).prop_flat_map(|(i, o, relu)| {
        (
            prop::collection::vec(-1.0f32..1.0, i * o),
            prop::collection::vec(-0.5f32..0.5, o),
            prop::collection::vec(prop::collection::vec(-1.0f32..1.0, i), 1..4),
            (0..o, prop_oneof![Just(-1i16), Just(1i16)]),
        )
            .prop_map(move |(w, b, xs, bump)| {
                let mut layers = vec![FloatLayer::Dense { w, b, input: i, output: o }];
                let mut shapes = vec![vec![1, i], vec![1, o]];
                if relu {
                    layers.push(FloatLayer::Relu);
                    shapes.push(vec![1, o]);
                }
                (FloatGraph { input: "x".into(), output: "y".into(), shapes, layers }, xs, bump)
            })
    })
}

/// A random network within the private op set, with calibration inputs (the first is the one to prove) and an
/// output index with a ±1 perturbation.
#[derive(Debug, Clone)]
pub struct NetCase {
    /// The float model.
    pub graph: FloatGraph,
    /// Calibration inputs; the first is proven.
    pub inputs: Vec<Vec<f32>>,
    /// An output index and a ±1 change to it.
    pub bump: (usize, i16),
}

/// Cases per property test: `default`, or `PROPTEST_CASES` when set (the exploration runs in TESTING.md).
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Random CNNs and MLPs, half each, built from a drawn seed (the seed is what a regression file records).
///
/// CNNs: 1-4 input channels of 3-10 x 3-10 (input sizes that are and are not multiples of the 4-lane group), an
/// optional ReLU on the input, 1-3 convolutions (kernel 1-5 per side, pads 0-2 per side, strides 1-3, 1-6 output
/// channels, so some layers have more than 128 taps), each optionally followed by a ReLU and by a max or
/// average pool (windows 1-3, strides 1-3, padded or not, `count_include_pad` either way), then Flatten and one
/// or two Dense layers. MLPs: 1-300 inputs (a first layer wider than one 128-tap row reads the input in groups)
/// and zero to two hidden layers of up to 150 units. After any convolution or hidden Dense layer, sometimes an affine
/// layer (Mul/Add by per-element constants), sometimes a Sigmoid or Tanh and sometimes a Softmax.
pub fn net_case() -> impl Strategy<Value = NetCase> {
    (any::<u64>(), any::<bool>()).prop_map(|(seed, cnn)| net_case_of(seed, cnn))
}

/// The network `net_case` draws for `seed` (a CNN or an MLP).
pub fn net_case_of(seed: u64, cnn: bool) -> NetCase {
    if cnn { random_cnn(seed) } else { random_mlp(seed) }
}

/// A xorshift generator: the networks depend on the seed only.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    /// Uniform in `[-a, a)`.
    fn float(&mut self, a: f32) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * a
    }
    fn floats(&mut self, n: usize, a: f32) -> Vec<f32> {
        (0..n).map(|_| self.float(a)).collect()
    }
}

/// Dense layers from `n` inputs through `widths`, with a ReLU between them (and after the last one sometimes).
fn dense_stack(rng: &mut Rng, layers: &mut Vec<FloatLayer>, shapes: &mut Vec<Vec<usize>>, widths: &[usize]) {
    let mut n = shapes.last().map(|s| s.iter().product()).unwrap_or(1);
    for (i, &o) in widths.iter().enumerate() {
        let scale = 1.5 / (n as f32).sqrt();
        layers.push(FloatLayer::Dense { w: rng.floats(n * o, scale), b: rng.floats(o, 0.2), input: n, output: o });
        shapes.push(vec![1, o]);
        // The last layer stays a Dense one (the public proofs' tests forge its STARK's output).
        if i + 1 < widths.len() {
            elementwise(rng, layers, shapes);
        }
        if i + 1 < widths.len() && rng.chance(70) {
            layers.push(FloatLayer::Relu);
            shapes.push(vec![1, o]);
        }
        n = o;
    }
}

/// Sometimes an affine layer (per-element multipliers and addends: Mul, Add, Sub by constants), sometimes a table
/// layer (Sigmoid or Tanh), sometimes a Softmax (over the last axis), on the last shape.
fn elementwise(rng: &mut Rng, layers: &mut Vec<FloatLayer>, shapes: &mut Vec<Vec<usize>>) {
    let shape = shapes.last().cloned().unwrap_or_default();
    let n: usize = shape.iter().product();
    if rng.chance(15) {
        layers.push(FloatLayer::Affine { mul: rng.floats(n, 2.0), add: rng.floats(n, 0.5) });
        shapes.push(shape.clone());
    }
    if rng.chance(12) {
        layers.push(if rng.chance(50) { FloatLayer::Sigmoid } else { FloatLayer::Tanh });
        shapes.push(shape.clone());
    }
    if rng.chance(8) {
        layers.push(FloatLayer::Softmax);
        shapes.push(shape);
    }
}

fn finish(rng: &mut Rng, layers: Vec<FloatLayer>, shapes: Vec<Vec<usize>>) -> NetCase {
    let n_in: usize = shapes[0].iter().product();
    let n_out: usize = shapes.last().map(|s| s.iter().product()).unwrap_or(1);
    let inputs = (0..4).map(|_| rng.floats(n_in, 1.0)).collect();
    let bump = (rng.range(0, n_out - 1), if rng.chance(50) { 1 } else { -1 });
    NetCase { graph: FloatGraph { input: "x".into(), output: "y".into(), shapes, layers }, inputs, bump }
}

fn random_mlp(seed: u64) -> NetCase {
    let mut rng = Rng::new(seed);
    let n_in = if rng.chance(40) { rng.range(129, 300) } else { rng.range(1, 128) };
    let hidden = rng.range(0, 2);
    let mut widths: Vec<usize> =
        (0..hidden).map(|_| if rng.chance(25) { rng.range(129, 150) } else { rng.range(1, 40) }).collect();
    widths.push(rng.range(1, 10));
    let (mut layers, mut shapes) = (vec![], vec![vec![1, n_in]]);
    dense_stack(&mut rng, &mut layers, &mut shapes, &widths);
    finish(&mut rng, layers, shapes)
}

/// A window geometry for an `h x w` plane: kernel up to `k_max`, pads up to `p_max` (and below the kernel when
/// `pad_below_kernel`, as ONNX pooling requires), strides 1-3.
fn geometry(rng: &mut Rng, h: usize, w: usize, k_max: usize, p_max: usize, pad_below_kernel: bool) -> Pool {
    let pad = |rng: &mut Rng, k: usize| {
        let cap = if pad_below_kernel { p_max.min(k - 1) } else { p_max };
        if rng.chance(40) { 0 } else { rng.range(0, cap) }
    };
    let kh = rng.range(1, k_max.min(h + 2 * p_max));
    let kw = if rng.chance(70) { kh.min(w + 2 * p_max) } else { rng.range(1, k_max.min(w + 2 * p_max)) };
    let mut pads = [pad(rng, kh), pad(rng, kw), pad(rng, kh), pad(rng, kw)];
    // The padded plane must hold one window.
    while h + pads[0] + pads[2] < kh {
        pads[2] += 1;
    }
    while w + pads[1] + pads[3] < kw {
        pads[3] += 1;
    }
    Pool { kernel: [kh, kw], stride: [rng.range(1, 3), rng.range(1, 3)], pads }
}

fn random_cnn(seed: u64) -> NetCase {
    let mut rng = Rng::new(seed);
    let (mut c, mut h, mut w) = (rng.range(1, 4), rng.range(3, 10), rng.range(3, 10));
    let (mut layers, mut shapes) = (vec![], vec![vec![1, c, h, w]]);
    if rng.chance(25) {
        layers.push(FloatLayer::Relu);
        shapes.push(vec![1, c, h, w]);
    }
    for _ in 0..rng.range(1, 3) {
        let geo = geometry(&mut rng, h, w, 5, 2, false);
        let oc = rng.range(1, 6);
        let k = c * geo.kernel[0] * geo.kernel[1];
        let scale = 1.5 / (k as f32).sqrt();
        let (oh, ow) = geo.out_hw(h, w).expect("the padded plane holds a window");
        layers.push(FloatLayer::Conv { w: rng.floats(oc * k, scale), b: rng.floats(oc, 0.2), ic: c, oc, geo });
        (c, h, w) = (oc, oh, ow);
        shapes.push(vec![1, c, h, w]);
        elementwise(&mut rng, &mut layers, &mut shapes);
        if rng.chance(60) {
            layers.push(FloatLayer::Relu);
            shapes.push(vec![1, c, h, w]);
        }
        if rng.chance(60) {
            let geo = geometry(&mut rng, h, w, 3, 1, true);
            let (oh, ow) = geo.out_hw(h, w).expect("the padded plane holds a window");
            layers.push(if rng.chance(50) {
                FloatLayer::MaxPool(geo)
            } else {
                FloatLayer::AvgPool { geo, count_include_pad: rng.chance(50) }
            });
            (h, w) = (oh, ow);
            shapes.push(vec![1, c, h, w]);
        }
    }
    layers.push(FloatLayer::Reshape(vec![1, c * h * w]));
    shapes.push(vec![1, c * h * w]);
    let widths: Vec<usize> =
        if rng.chance(50) { vec![rng.range(1, 10)] } else { vec![rng.range(2, 16), rng.range(1, 10)] };
    dense_stack(&mut rng, &mut layers, &mut shapes, &widths);
    finish(&mut rng, layers, shapes)
}

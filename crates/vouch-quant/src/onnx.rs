//! Reading a float ONNX model into a [`FloatGraph`]: a single chain of supported operators from one input to
//! one output, with weights as initializers (or Constant nodes). BatchNormalization folds into the preceding
//! Conv/Dense; an Add of a bias right after MatMul folds into the Dense layer.

use std::collections::HashMap;

use prost::Message;
use tract_onnx::pb;

use crate::QuantError;
use crate::float::{FloatGraph, FloatLayer, Pool};

struct Const {
    dims: Vec<usize>,
    data: Vec<f32>,
}

/// Largest element count of any tensor or activation the zk path takes from a model file.
const MAX_VOLUME: usize = 1 << 28;

/// The element count of `dims`, refused (never overflowing) above [`MAX_VOLUME`]: every size a hostile file states
/// is checked before anything is sized by it.
fn volume(dims: &[usize]) -> Result<usize, QuantError> {
    dims.iter()
        .try_fold(1usize, |n, d| n.checked_mul(*d))
        .filter(|n| *n <= MAX_VOLUME)
        .ok_or_else(|| QuantError::Malformed(format!("shape {dims:?} is too large")))
}

fn tensor_f32(t: &pb::TensorProto) -> Result<Const, QuantError> {
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|d| usize::try_from(*d))
        .collect::<Result<_, _>>()
        .map_err(|_| QuantError::Malformed(format!("negative dim in {}", t.name)))?;
    let n = volume(&dims)?;
    let data: Vec<f32> = match t.data_type {
        1 if !t.raw_data.is_empty() => {
            t.raw_data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4"))).collect()
        }
        1 => t.float_data.clone(),
        7 if !t.raw_data.is_empty() => {
            t.raw_data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8")) as f32).collect()
        }
        7 => t.int64_data.iter().map(|v| *v as f32).collect(),
        6 if !t.raw_data.is_empty() => {
            t.raw_data.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().expect("4")) as f32).collect()
        }
        6 => t.int32_data.iter().map(|v| *v as f32).collect(),
        other => {
            return Err(QuantError::Malformed(format!(
                "tensor {} has data type {other}; the zk path takes f32 weights",
                t.name
            )));
        }
    };
    if data.len() != n {
        return Err(QuantError::Malformed(format!("tensor {} holds {} values for dims {dims:?}", t.name, data.len())));
    }
    Ok(Const { dims, data })
}

fn attr<'a>(node: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn attr_ints(node: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

fn attr_int(node: &pb::NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).map(|a| a.i).unwrap_or(default)
}

fn attr_f(node: &pb::NodeProto, name: &str, default: f32) -> f32 {
    attr(node, name).map(|a| a.f).unwrap_or(default)
}

struct Ctx<'a> {
    node: &'a pb::NodeProto,
}

impl Ctx<'_> {
    fn unsupported(&self, reason: impl Into<String>) -> QuantError {
        QuantError::Unsupported { op: self.node.op_type.clone(), node: self.node.name.clone(), reason: reason.into() }
    }
}

fn geometry(cx: &Ctx, kernel: [usize; 2]) -> Result<Pool, QuantError> {
    let n = cx.node;
    if let Some(a) = attr(n, "auto_pad") {
        let s = String::from_utf8_lossy(&a.s);
        if s != "NOTSET" && s != "VALID" {
            return Err(cx.unsupported(format!("auto_pad {s}")));
        }
    }
    if attr_int(n, "ceil_mode", 0) != 0 {
        return Err(cx.unsupported("ceil_mode 1"));
    }
    if attr_ints(n, "dilations").is_some_and(|d| d.iter().any(|v| *v != 1)) {
        return Err(cx.unsupported("dilations other than 1"));
    }
    let pair = |v: Option<Vec<i64>>, d: usize| -> Result<[usize; 2], QuantError> {
        match v.as_deref() {
            None => Ok([d, d]),
            Some([a, b]) if *a >= 0 && *b >= 0 => Ok([*a as usize, *b as usize]),
            Some(other) => Err(cx.unsupported(format!("2-D geometry expected, got {other:?}"))),
        }
    };
    let stride = pair(attr_ints(n, "strides"), 1)?;
    let pads = match attr_ints(n, "pads").as_deref() {
        None => [0; 4],
        Some([a, b, c, d]) if [a, b, c, d].iter().all(|v| **v >= 0) => {
            [*a as usize, *b as usize, *c as usize, *d as usize]
        }
        Some(other) => return Err(cx.unsupported(format!("pads {other:?}"))),
    };
    Ok(Pool { kernel, stride, pads })
}

/// The operators the zk path takes.
pub const SUPPORTED_OPS: &[&str] = &[
    "MatMul",
    "Gemm",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Conv",
    "BatchNormalization",
    "Relu",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "MaxPool",
    "AveragePool",
    "Flatten",
    "Reshape",
    "Identity",
    "Dropout",
    "Constant",
];

/// Reads the ONNX model in `bytes`. Operators are checked first, so a model outside the op set is refused
/// with the first unsupported op named whatever else is wrong with it.
pub fn parse(bytes: &[u8]) -> Result<FloatGraph, QuantError> {
    let model = pb::ModelProto::decode(bytes).map_err(|e| QuantError::Malformed(e.to_string()))?;
    let graph = model.graph.as_ref().ok_or_else(|| QuantError::Malformed("no graph".into()))?;
    if let Some(node) = graph.node.iter().find(|n| !SUPPORTED_OPS.contains(&n.op_type.as_str())) {
        return Err(QuantError::UnsupportedOp { op: node.op_type.clone(), node: node.name.clone() });
    }
    // Constants are converted when a supported op uses them, so an unsupported op is reported as such
    // even when its constants have types the zk path would not take.
    let mut consts: HashMap<String, Result<Const, QuantError>> = HashMap::new();
    for t in &graph.initializer {
        consts.insert(t.name.clone(), tensor_f32(t));
    }
    let inputs: Vec<&pb::ValueInfoProto> = graph.input.iter().filter(|i| !consts.contains_key(&i.name)).collect();
    let [input] = inputs.as_slice() else {
        return Err(QuantError::Topology(format!("{} graph inputs; the zk path takes exactly one", inputs.len())));
    };
    let [output] = graph.output.as_slice() else {
        return Err(QuantError::Topology(format!(
            "{} graph outputs; the zk path takes exactly one",
            graph.output.len()
        )));
    };
    let Some(pb::type_proto::Value::TensorType(tt)) = input.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Err(QuantError::Malformed("input has no tensor type".into()));
    };
    if tt.elem_type != 1 {
        return Err(QuantError::Topology("the zk path takes one f32 input".into()));
    }
    // Open dimensions (batch) are taken as 1: proofs are per example.
    let in_shape: Vec<usize> = tt
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if *v > 0 => *v as usize,
                    _ => 1,
                })
                .collect()
        })
        .ok_or_else(|| QuantError::Topology("input has no shape".into()))?;

    let mut g =
        FloatGraph { input: input.name.clone(), output: output.name.clone(), shapes: vec![in_shape], layers: vec![] };
    let mut current = input.name.clone();
    // Whether the last layer is a Dense that has not seen a bias yet (MatMul then Add).
    let mut open_dense = false;
    for node in &graph.node {
        let cx = Ctx { node };
        if node.op_type == "Constant" {
            let t = attr(node, "value")
                .and_then(|a| a.t.as_ref())
                .ok_or_else(|| cx.unsupported("Constant without a tensor value"))?;
            consts.insert(node.output.first().cloned().unwrap_or_default(), tensor_f32(t));
            continue;
        }
        let data_in = node.input.first().ok_or_else(|| cx.unsupported("no inputs"))?;
        if *data_in != current {
            return Err(QuantError::Topology(format!(
                "node {:?} ({}) does not consume the previous layer's output {current:?}",
                node.name, node.op_type
            )));
        }
        let konst = |i: usize| -> Result<&Const, QuantError> {
            let name = node.input.get(i).ok_or_else(|| cx.unsupported(format!("missing input {i}")))?;
            match consts.get(name) {
                Some(Ok(c)) => Ok(c),
                Some(Err(e)) => Err(e.clone()),
                None => Err(cx.unsupported(format!("input {name:?} must be a constant"))),
            }
        };
        let shape = g.shapes.last().expect("input shape").clone();
        let elems = volume(&shape)?;
        let mut new_shape = shape.clone();
        let mut was_open_dense = false;
        let layers_before = g.layers.len();
        match node.op_type.as_str() {
            "Identity" | "Dropout" => {}
            "MatMul" | "Gemm" => {
                let features = *shape.last().unwrap_or(&0);
                if elems != features {
                    return Err(
                        cx.unsupported(format!("input shape {shape:?}: only a single row (batch 1) is supported"))
                    );
                }
                let b = konst(1)?;
                let gemm = node.op_type == "Gemm";
                if gemm && attr_int(node, "transA", 0) != 0 {
                    return Err(cx.unsupported("transA"));
                }
                let trans_b = gemm && attr_int(node, "transB", 0) != 0;
                let (k, n) = match b.dims.as_slice() {
                    [r, c] if trans_b => (*c, *r),
                    [r, c] => (*r, *c),
                    other => return Err(cx.unsupported(format!("weight dims {other:?}"))),
                };
                if k != features {
                    return Err(cx.unsupported(format!("weights take {k} features, input has {features}")));
                }
                let alpha = if gemm { attr_f(node, "alpha", 1.0) } else { 1.0 };
                let mut w = vec![0f32; n * k];
                for o in 0..n {
                    for i in 0..k {
                        w[o * k + i] = alpha * if trans_b { b.data[o * k + i] } else { b.data[i * n + o] };
                    }
                }
                let mut bias = vec![0f32; n];
                if gemm && node.input.len() > 2 && !node.input[2].is_empty() {
                    let c = konst(2)?;
                    let beta = attr_f(node, "beta", 1.0);
                    let full = broadcast(&c.data, &c.dims, &[1, n])
                        .ok_or_else(|| cx.unsupported(format!("bias dims {:?}", c.dims)))?;
                    bias.iter_mut().zip(full).for_each(|(b, c)| *b = beta * c);
                }
                g.layers.push(FloatLayer::Dense { w, b: bias, input: k, output: n });
                *new_shape.last_mut().expect("rank >= 1") = n;
                was_open_dense = !gemm;
            }
            "Add" | "Sub" | "Mul" | "Div" => {
                let c = konst(1)?;
                let full = broadcast(&c.data, &c.dims, &shape).ok_or_else(|| {
                    cx.unsupported(format!("constant dims {:?} do not broadcast to {shape:?}", c.dims))
                })?;
                match node.op_type.as_str() {
                    "Add" if open_dense => {
                        if let Some(FloatLayer::Dense { b, .. }) = g.layers.last_mut() {
                            b.iter_mut().zip(&full).for_each(|(b, c)| *b += c);
                        }
                    }
                    "Add" => g.layers.push(FloatLayer::Affine { mul: vec![1.0; elems], add: full }),
                    "Sub" => g
                        .layers
                        .push(FloatLayer::Affine { mul: vec![1.0; elems], add: full.iter().map(|v| -v).collect() }),
                    "Mul" => g.layers.push(FloatLayer::Affine { mul: full, add: vec![0.0; elems] }),
                    _ => g.layers.push(FloatLayer::Affine {
                        mul: full.iter().map(|v| 1.0 / v).collect(),
                        add: vec![0.0; elems],
                    }),
                }
            }
            "Conv" => {
                if attr_int(node, "group", 1) != 1 {
                    return Err(cx.unsupported("group other than 1"));
                }
                let [n, c, h, wd] = shape[..] else {
                    return Err(cx.unsupported(format!("input shape {shape:?}: NCHW expected")));
                };
                if n != 1 {
                    return Err(cx.unsupported("batch other than 1"));
                }
                let w = konst(1)?;
                let [oc, ic, kh, kw] = w.dims[..] else {
                    return Err(cx.unsupported(format!("weight dims {:?}", w.dims)));
                };
                if ic != c {
                    return Err(cx.unsupported(format!("weights take {ic} channels, input has {c}")));
                }
                let geo = geometry(&cx, [kh, kw])?;
                let (oh, ow) =
                    geo.out_hw(h, wd).ok_or_else(|| cx.unsupported("kernel larger than the padded input"))?;
                let b = if node.input.len() > 2 && !node.input[2].is_empty() {
                    konst(2)?.data.clone()
                } else {
                    vec![0.0; oc]
                };
                if b.len() != oc {
                    return Err(cx.unsupported("bias length"));
                }
                g.layers.push(FloatLayer::Conv { w: w.data.clone(), b, ic, oc, geo });
                new_shape = vec![1, oc, oh, ow];
            }
            "BatchNormalization" => {
                let (scale, bias, mean, var) = (konst(1)?, konst(2)?, konst(3)?, konst(4)?);
                let eps = attr_f(node, "epsilon", 1e-5);
                let channels = *shape.get(1).ok_or_else(|| cx.unsupported("rank < 2"))?;
                let k: Vec<f32> = (0..channels).map(|c| scale.data[c] / (var.data[c] + eps).sqrt()).collect();
                let s: Vec<f32> = (0..channels).map(|c| bias.data[c] - mean.data[c] * k[c]).collect();
                match g.layers.last_mut() {
                    Some(FloatLayer::Conv { w, b, oc, .. }) if *oc == channels => {
                        let per = w.len() / channels;
                        for c in 0..channels {
                            w[c * per..(c + 1) * per].iter_mut().for_each(|v| *v *= k[c]);
                            b[c] = b[c] * k[c] + s[c];
                        }
                    }
                    Some(FloatLayer::Dense { w, b, input, output }) if *output == channels => {
                        for c in 0..channels {
                            w[c * *input..(c + 1) * *input].iter_mut().for_each(|v| *v *= k[c]);
                            b[c] = b[c] * k[c] + s[c];
                        }
                    }
                    _ => {
                        let per = elems / channels;
                        let mul = (0..elems).map(|i| k[i / per]).collect();
                        let add = (0..elems).map(|i| s[i / per]).collect();
                        g.layers.push(FloatLayer::Affine { mul, add });
                    }
                }
            }
            "Relu" => g.layers.push(FloatLayer::Relu),
            "Sigmoid" => g.layers.push(FloatLayer::Sigmoid),
            "Tanh" => g.layers.push(FloatLayer::Tanh),
            "Softmax" => {
                let axis = attr_int(node, "axis", -1);
                let rank = shape.len() as i64;
                let last_axis = axis == -1 || axis == rank - 1;
                // Before opset 13 the axis coerces to 2-D; with every leading dim 1 that is the last axis too.
                let leading_ones = shape[..shape.len() - 1].iter().all(|d| *d == 1);
                if !(last_axis || leading_ones) {
                    return Err(cx.unsupported(format!("softmax over axis {axis} of {shape:?}")));
                }
                g.layers.push(FloatLayer::Softmax);
            }
            "MaxPool" | "AveragePool" => {
                let [_, c, h, wd] = shape[..] else {
                    return Err(cx.unsupported("NCHW expected"));
                };
                let k = match attr_ints(node, "kernel_shape").as_deref() {
                    Some([a, b]) if *a > 0 && *b > 0 => [*a as usize, *b as usize],
                    other => return Err(cx.unsupported(format!("kernel_shape {other:?}"))),
                };
                let geo = geometry(&cx, k)?;
                let (oh, ow) =
                    geo.out_hw(h, wd).ok_or_else(|| cx.unsupported("kernel larger than the padded input"))?;
                if node.output.len() > 1 {
                    return Err(cx.unsupported("MaxPool indices output"));
                }
                g.layers.push(if node.op_type == "MaxPool" {
                    FloatLayer::MaxPool(geo)
                } else {
                    FloatLayer::AvgPool { geo, count_include_pad: attr_int(node, "count_include_pad", 0) != 0 }
                });
                new_shape = vec![1, c, oh, ow];
            }
            "Flatten" => {
                let axis = attr_int(node, "axis", 1).rem_euclid(shape.len() as i64 + 1) as usize;
                let outer = volume(&shape[..axis])?;
                new_shape = vec![outer, elems / outer.max(1)];
                g.layers.push(FloatLayer::Reshape(new_shape.clone()));
            }
            "Reshape" => {
                let target = konst(1)?;
                let mut dims: Vec<i64> = target.data.iter().map(|v| *v as i64).collect();
                for (i, d) in dims.iter_mut().enumerate() {
                    if *d == 0 {
                        *d = *shape.get(i).ok_or_else(|| cx.unsupported("0 beyond the input rank"))? as i64;
                    }
                }
                let known: Vec<usize> = dims.iter().filter(|d| **d > 0).map(|d| *d as usize).collect();
                let known = volume(&known).map_err(|_| cx.unsupported(format!("target shape {dims:?}")))?;
                let unknown = dims.iter().filter(|d| **d < 0).count();
                if unknown > 1 || known == 0 {
                    return Err(cx.unsupported(format!("target shape {dims:?}")));
                }
                new_shape = dims.iter().map(|d| if *d < 0 { elems / known } else { *d as usize }).collect();
                if volume(&new_shape).ok() != Some(elems) {
                    return Err(cx.unsupported(format!("cannot reshape {shape:?} to {new_shape:?}")));
                }
                g.layers.push(FloatLayer::Reshape(new_shape.clone()));
            }
            other => {
                return Err(QuantError::UnsupportedOp { op: other.to_owned(), node: node.name.clone() });
            }
        }
        open_dense = was_open_dense;
        if g.layers.len() > layers_before {
            g.shapes.push(new_shape);
        }
        current = node.output.first().cloned().ok_or_else(|| cx.unsupported("no outputs"))?;
    }
    if current != output.name {
        return Err(QuantError::Topology(format!(
            "the chain ends at {current:?}, not at the graph output {:?}",
            output.name
        )));
    }
    if g.layers.is_empty() {
        return Err(QuantError::Topology("no layers".into()));
    }
    Ok(g)
}

/// Numpy-style broadcast of `data` (dims `from`) to `to`, as a flat row-major vector.
fn broadcast(data: &[f32], from: &[usize], to: &[usize]) -> Option<Vec<f32>> {
    if from.len() > to.len() {
        return None;
    }
    let pad = to.len() - from.len();
    let from: Vec<usize> = std::iter::repeat_n(1, pad).chain(from.iter().copied()).collect();
    if from.iter().zip(to).any(|(f, t)| *f != 1 && f != t) {
        return None;
    }
    let n = volume(to).ok()?;
    let mut out = Vec::with_capacity(n);
    for flat in 0..n {
        let mut rem = flat;
        let mut src = 0;
        let mut stride = 1;
        let mut idx = vec![0; to.len()];
        for a in (0..to.len()).rev() {
            idx[a] = rem % to[a];
            rem /= to[a];
        }
        for a in (0..to.len()).rev() {
            let i = if from[a] == 1 { 0 } else { idx[a] };
            src += i * stride;
            stride *= from[a];
        }
        out.push(*data.get(src)?);
    }
    Some(out)
}

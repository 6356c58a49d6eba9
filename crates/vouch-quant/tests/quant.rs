//! The zk-path semantics on the bench models: the float chain matches tract, quantization keeps the argmax,
//! and the integer executor is deterministic and agrees with a naive reference on random layers.

use std::path::PathBuf;

use proptest::prelude::*;
use vouch_codec::{Tensor, TensorData, TensorMap};
use vouch_engine::{Engine, TractEngine, inspect};
use vouch_quant::{FloatGraph, FloatLayer, QLayer, QuantError, parse, quantize, rshift_round};

fn bench(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/bench/models").join(format!("{name}.onnx"));
    assert!(p.is_file(), "{} missing: shared/ must sit beside the repository", p.display());
    p
}

fn inputs(n: usize, count: usize, seed: u64) -> Vec<Vec<f32>> {
    vouch_quant::seeded_inputs(n, count, seed)
}

#[test]
fn float_chain_matches_tract_on_the_bench_models() {
    for name in ["mlp_small", "mlp_mnist", "lenet_small"] {
        let path = bench(name);
        let g = parse(&std::fs::read(&path).unwrap()).unwrap();
        let info = inspect(&path).unwrap();
        let model = TractEngine::default().compile(&path, &info, None).unwrap();
        let n: usize = g.shapes[0].iter().product();
        for x in inputs(n, 5, 1) {
            let shape: Vec<u64> = g.shapes[0].iter().map(|d| *d as u64).collect();
            let mut m = TensorMap::new();
            m.insert(g.input.clone(), Tensor::new(shape, TensorData::F32(x.clone())).unwrap());
            let want = match model.run(&m).unwrap()[&g.output].data() {
                TensorData::F32(v) => v.clone(),
                other => panic!("{other:?}"),
            };
            let got = g.run(&x);
            let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(err < 1e-4, "{name}: float chain differs from tract by {err}");
        }
    }
}

#[test]
fn quantized_bench_models_keep_the_argmax() {
    for name in ["mlp_small", "mlp_mnist", "lenet_small"] {
        let g = parse(&std::fs::read(bench(name)).unwrap()).unwrap();
        let n: usize = g.shapes[0].iter().product();
        let (q, report) = quantize(&g, &inputs(n, 64, 2)).unwrap();
        assert!(report.acceptable(), "{name}: {report:?}");
        // Held-out inputs too, not only the calibration set.
        let held = inputs(n, 64, 3);
        let agree = held
            .iter()
            .filter(|x| {
                let f = g.run(x);
                let i = q.dequantize_output(&q.run(&q.quantize_input(x)).unwrap());
                let am = |v: &[f32]| v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
                am(&f) == am(&i)
            })
            .count();
        assert!(agree >= 62, "{name}: argmax agreement {agree}/64 on held-out inputs");
        // Fused ReLU: every linear layer followed by Relu clamps at zero.
        for (i, l) in q.layers.iter().enumerate() {
            if let QLayer::Dense { relu, .. } | QLayer::Conv { relu, .. } = l {
                assert_eq!(*relu, matches!(q.layers.get(i + 1), Some(QLayer::Relu)));
            }
        }
        eprintln!("{name}: {report:?}");
    }
}

#[test]
fn the_integer_executor_is_deterministic_and_checks_input_size() {
    let g = parse(&std::fs::read(bench("lenet_small")).unwrap()).unwrap();
    let (q, _) = quantize(&g, &inputs(784, 8, 4)).unwrap();
    let x = q.quantize_input(&inputs(784, 1, 5)[0]);
    assert_eq!(q.run_all(&x).unwrap(), q.run_all(&x).unwrap());
    assert_eq!(q.run(&x[..10]), Err(QuantError::InputSize { expected: 784, found: 10 }));
}

#[test]
fn unsupported_operators_are_named() {
    // A model whose second op is outside the zk op set.
    use prost::Message;
    use tract_onnx::pb;
    let vi = |name: &str| pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: 1,
                shape: Some(pb::TensorShapeProto {
                    dim: [1, 4]
                        .iter()
                        .map(|d| pb::tensor_shape_proto::Dimension {
                            value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(*d)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let node = |op: &str, i: &str, o: &str| pb::NodeProto {
        op_type: op.into(),
        name: format!("{op}_0"),
        input: vec![i.into()],
        output: vec![o.into()],
        ..Default::default()
    };
    let model = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 13 }],
        graph: Some(pb::GraphProto {
            node: vec![node("Relu", "x", "h"), node("Erf", "h", "y")],
            input: vec![vi("x")],
            output: vec![vi("y")],
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        parse(&model.encode_to_vec()),
        Err(QuantError::UnsupportedOp { op: "Erf".into(), node: "Erf_0".into() })
    );
    assert!(matches!(parse(b"garbage"), Err(QuantError::Malformed(_))));
}

proptest! {
    /// Random small dense layers: the integer executor equals a naive i128 reference of the documented
    /// semantics, and the dequantized result is close to the float layer.
    #[test]
    fn dense_layers_follow_the_documented_semantics(
        (inp, out, w, b, xs) in (1usize..12, 1usize..6).prop_flat_map(|(i, o)| (
            Just(i), Just(o),
            prop::collection::vec(-1.0f32..1.0, i * o),
            prop::collection::vec(-0.5f32..0.5, o),
            prop::collection::vec(prop::collection::vec(-1.0f32..1.0, i), 1..6),
        ))
    ) {
        let g = FloatGraph {
            input: "x".into(),
            output: "y".into(),
            shapes: vec![vec![1, inp], vec![1, out]],
            layers: vec![FloatLayer::Dense { w: w.clone(), b: b.clone(), input: inp, output: out }],
        };
        let (q, _) = quantize(&g, &xs).unwrap();
        let QLayer::Dense { w: wq, b: bq, rq, relu, .. } = &q.layers[0] else { panic!() };
        prop_assert!(!relu);
        for x in &xs {
            let xq = q.quantize_input(x);
            let y = q.run(&xq).unwrap();
            for o in 0..out {
                let acc: i128 = i128::from(bq[o]) + (0..inp).map(|i| i128::from(wq[o * inp + i]) * i128::from(xq[i])).sum::<i128>();
                let want = rshift_round(acc * i128::from(rq[o].mult), rq[o].shift).clamp(-32767, 32767) as i16;
                prop_assert_eq!(y[o], want);
            }
            // Error budget: weight rounding (half a weight step on every product), input rounding (half an
            // input step through every weight) and output rounding, with 50% slack.
            let f = g.run(x);
            let d = q.dequantize_output(&y);
            let (s_in, s_out) = (q.scales[0], q.scales[1]);
            let x_max = x.iter().fold(0f64, |m, v| m.max(f64::from(v.abs())));
            for o in 0..out {
                let row = &w[o * inp..(o + 1) * inp];
                let w_max = row.iter().fold(0f64, |m, v| m.max(f64::from(v.abs())));
                let w_sum: f64 = row.iter().map(|v| f64::from(v.abs())).sum();
                let budget = inp as f64 * (w_max / 254.0) * (x_max + s_in) + w_sum * s_in / 2.0 + s_out;
                let err = f64::from((d[o] - f[o]).abs());
                prop_assert!(err <= 1.5 * budget + 1e-6, "dequantized {} vs float {}: error {err} > budget {budget}", d[o], f[o]);
            }
        }
    }
}

//! Shared test inputs: random small Dense(+ReLU) graphs for the property tests of both proof systems.

use proptest::prelude::*;
use vouch_quant::{FloatGraph, FloatLayer};

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

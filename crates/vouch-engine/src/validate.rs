//! Checking request inputs against a model's signature before anything runs.

use std::collections::BTreeMap;

use vouch_codec::{DType, Dim, TensorMap, TensorSpec};

/// Why inputs do not fit a model's signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// An input the model does not declare.
    #[error("unknown input {name:?}; the model's inputs are: {expected}")]
    Unknown {
        /// The name given.
        name: String,
        /// The declared inputs.
        expected: String,
    },
    /// A declared input is missing.
    #[error("missing input {name:?} ({spec})")]
    Missing {
        /// The input.
        name: String,
        /// Its declaration.
        spec: String,
    },
    /// Wrong element type.
    #[error("input {name:?} has dtype {found}, the model expects {expected}")]
    DType {
        /// The input.
        name: String,
        /// Declared dtype.
        expected: DType,
        /// Given dtype.
        found: DType,
    },
    /// Wrong rank.
    #[error("input {name:?} has shape {found:?} (rank {}), the model expects rank {expected} ({spec})", found.len())]
    Rank {
        /// The input.
        name: String,
        /// Declared rank.
        expected: usize,
        /// Given shape.
        found: Vec<u64>,
        /// Its declaration.
        spec: String,
    },
    /// A fixed dimension differs.
    #[error("input {name:?} has size {found} on axis {axis}, the model expects {expected} ({spec})")]
    Dim {
        /// The input.
        name: String,
        /// The axis.
        axis: usize,
        /// Declared size.
        expected: u64,
        /// Given size.
        found: u64,
        /// Its declaration.
        spec: String,
    },
    /// A symbolic dimension takes two sizes in one request.
    #[error("dimension {symbol:?} is {first} in one place and {second} in input {name:?} axis {axis}")]
    Symbol {
        /// The symbol.
        symbol: String,
        /// Size first bound.
        first: u64,
        /// The conflicting size.
        second: u64,
        /// The input.
        name: String,
        /// The axis.
        axis: usize,
    },
}

impl InputError {
    /// A stable machine-readable code for API errors.
    pub fn code(&self) -> &'static str {
        match self {
            InputError::Unknown { .. } => "unknown_input",
            InputError::Missing { .. } => "missing_input",
            InputError::DType { .. } => "dtype_mismatch",
            InputError::Rank { .. } | InputError::Dim { .. } | InputError::Symbol { .. } => "shape_mismatch",
        }
    }
}

/// Checks names, dtypes, ranks, fixed dimensions and the consistency of symbolic ones.
pub fn validate_inputs(specs: &[TensorSpec], inputs: &TensorMap) -> Result<(), InputError> {
    if let Some(name) = inputs.keys().find(|n| !specs.iter().any(|s| &s.name == *n)) {
        let expected = specs.iter().map(TensorSpec::describe).collect::<Vec<_>>().join(", ");
        return Err(InputError::Unknown { name: name.clone(), expected });
    }
    let mut symbols: BTreeMap<&str, u64> = BTreeMap::new();
    for spec in specs {
        let Some(t) = inputs.get(&spec.name) else {
            return Err(InputError::Missing { name: spec.name.clone(), spec: spec.describe() });
        };
        if t.dtype() != spec.dtype {
            return Err(InputError::DType { name: spec.name.clone(), expected: spec.dtype, found: t.dtype() });
        }
        let Some(shape) = &spec.shape else { continue };
        if shape.len() != t.shape().len() {
            return Err(InputError::Rank {
                name: spec.name.clone(),
                expected: shape.len(),
                found: t.shape().to_vec(),
                spec: spec.describe(),
            });
        }
        for (axis, (d, &n)) in shape.iter().zip(t.shape()).enumerate() {
            match d {
                Dim::Fixed(e) if *e != n => {
                    return Err(InputError::Dim {
                        name: spec.name.clone(),
                        axis,
                        expected: *e,
                        found: n,
                        spec: spec.describe(),
                    });
                }
                Dim::Symbol(s) => match symbols.get(s.as_str()) {
                    Some(&first) if first != n => {
                        return Err(InputError::Symbol {
                            symbol: s.clone(),
                            first,
                            second: n,
                            name: spec.name.clone(),
                            axis,
                        });
                    }
                    _ => {
                        symbols.insert(s, n);
                    }
                },
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vouch_codec::{Tensor, TensorData};

    fn specs() -> Vec<TensorSpec> {
        vec![
            TensorSpec {
                name: "a".into(),
                dtype: DType::F32,
                shape: Some(vec![Dim::Symbol("N".into()), Dim::Fixed(2)]),
            },
            TensorSpec { name: "b".into(), dtype: DType::I64, shape: Some(vec![Dim::Symbol("N".into())]) },
        ]
    }

    fn inputs(n_a: u64, n_b: u64) -> TensorMap {
        let mut m = TensorMap::new();
        m.insert("a".into(), Tensor::new(vec![n_a, 2], TensorData::F32(vec![0.0; (n_a * 2) as usize])).unwrap());
        m.insert("b".into(), Tensor::new(vec![n_b], TensorData::I64(vec![0; n_b as usize])).unwrap());
        m
    }

    #[test]
    fn consistent_symbols_pass_and_conflicting_ones_fail() {
        assert_eq!(validate_inputs(&specs(), &inputs(3, 3)), Ok(()));
        assert_eq!(
            validate_inputs(&specs(), &inputs(3, 4)),
            Err(InputError::Symbol { symbol: "N".into(), first: 3, second: 4, name: "b".into(), axis: 0 })
        );
    }

    #[test]
    fn each_mismatch_has_its_own_error() {
        let mut m = inputs(1, 1);
        m.insert("c".into(), m["b"].clone());
        assert!(matches!(validate_inputs(&specs(), &m), Err(InputError::Unknown { name, .. }) if name == "c"));
        let mut m = inputs(1, 1);
        m.remove("b");
        assert!(matches!(validate_inputs(&specs(), &m), Err(InputError::Missing { name, .. }) if name == "b"));
        let mut m = inputs(1, 1);
        m.insert("b".into(), Tensor::new(vec![1], TensorData::I32(vec![0])).unwrap());
        assert!(matches!(
            validate_inputs(&specs(), &m),
            Err(InputError::DType { expected: DType::I64, found: DType::I32, .. })
        ));
        let mut m = inputs(1, 1);
        m.insert("a".into(), Tensor::new(vec![1, 3], TensorData::F32(vec![0.0; 3])).unwrap());
        assert!(matches!(validate_inputs(&specs(), &m), Err(InputError::Dim { axis: 1, expected: 2, found: 3, .. })));
        let mut m = inputs(1, 1);
        m.insert("a".into(), Tensor::new(vec![2], TensorData::F32(vec![0.0; 2])).unwrap());
        assert!(matches!(validate_inputs(&specs(), &m), Err(InputError::Rank { expected: 2, .. })));
    }
}

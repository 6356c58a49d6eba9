//! A model's signature: the names, dtypes and shapes (with symbolic or unknown dimensions) of its inputs
//! and outputs, as declared by the model file and stored with every model version.

use serde::{Deserialize, Serialize};

use crate::tensor::DType;

/// One dimension of a declared shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Dim {
    /// A fixed size.
    Fixed(u64),
    /// A named symbol (`batch`); every use of one symbol in one request must have the same size.
    Symbol(String),
    /// Any size (JSON `null`).
    Unknown,
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbol(s) => f.write_str(s),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

/// A declared input or output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    /// Name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape, if the model declares one.
    pub shape: Option<Vec<Dim>>,
}

impl TensorSpec {
    /// `name: dtype[d0, d1, ...]`.
    pub fn describe(&self) -> String {
        match &self.shape {
            Some(s) => format!(
                "{}: {}[{}]",
                self.name,
                self.dtype,
                s.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            ),
            None => format!("{}: {}[..]", self.name, self.dtype),
        }
    }
}

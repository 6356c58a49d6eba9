//! Tensors: a dtype, a shape and row-major data; their canonical encoding and JSON view.
//!
//! Canonical tensor: `dtype: u8` (ONNX `TensorProto.DataType` code), `rank: u8`, `dims: u64 * rank`, then
//! the elements in row-major order: numbers little-endian (every NaN written as the canonical quiet NaN,
//! so a digest never depends on a NaN payload), booleans as one byte 0/1, strings length-prefixed.
//! A tensor map is `count: u32` then `(name, tensor)` pairs in strictly increasing byte order of names.
//!
//! JSON: `{"dtype": "f32", "shape": [1, 2], "data": [0.5, 1.0]}`; non-finite floats are the strings
//! `"NaN"`, `"Infinity"` and `"-Infinity"`. Float values print in their shortest round-tripping form,
//! so JSON -> tensor -> JSON is lossless.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::canon::{Canonical, DecodeError, Reader, Writer};
use crate::digest::{Digest, domain};

/// Named tensors, ordered by name (the canonical order).
pub type TensorMap = BTreeMap<String, Tensor>;

/// Element types. Discriminants are ONNX `TensorProto.DataType` codes, used as-is in the encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum DType {
    /// 32-bit float.
    F32 = 1,
    /// Unsigned byte.
    U8 = 2,
    /// Signed byte.
    I8 = 3,
    /// Unsigned 16-bit.
    U16 = 4,
    /// Signed 16-bit.
    I16 = 5,
    /// Signed 32-bit.
    I32 = 6,
    /// Signed 64-bit.
    I64 = 7,
    /// UTF-8 string.
    String = 8,
    /// Boolean.
    Bool = 9,
    /// 64-bit float.
    F64 = 11,
    /// Unsigned 32-bit.
    U32 = 12,
    /// Unsigned 64-bit.
    U64 = 13,
}

impl DType {
    /// All supported dtypes.
    pub const ALL: [DType; 12] = [
        DType::F32,
        DType::U8,
        DType::I8,
        DType::U16,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::String,
        DType::Bool,
        DType::F64,
        DType::U32,
        DType::U64,
    ];
    /// From the ONNX `TensorProto.DataType` code.
    pub fn from_onnx(code: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|d| *d as i32 == code)
    }
    /// The short name used in JSON and errors.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::U8 => "u8",
            DType::I8 => "i8",
            DType::U16 => "u16",
            DType::I16 => "i16",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::String => "string",
            DType::Bool => "bool",
            DType::F64 => "f64",
            DType::U32 => "u32",
            DType::U64 => "u64",
        }
    }
    /// Parses a short name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == s)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Row-major element storage, one variant per dtype.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum TensorData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    Bool(Vec<bool>),
    String(Vec<String>),
}

macro_rules! for_each_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::F32($v) => $body,
            TensorData::F64($v) => $body,
            TensorData::I8($v) => $body,
            TensorData::I16($v) => $body,
            TensorData::I32($v) => $body,
            TensorData::I64($v) => $body,
            TensorData::U8($v) => $body,
            TensorData::U16($v) => $body,
            TensorData::U32($v) => $body,
            TensorData::U64($v) => $body,
            TensorData::Bool($v) => $body,
            TensorData::String($v) => $body,
        }
    };
}

impl TensorData {
    /// The dtype of the elements.
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::F64(_) => DType::F64,
            TensorData::I8(_) => DType::I8,
            TensorData::I16(_) => DType::I16,
            TensorData::I32(_) => DType::I32,
            TensorData::I64(_) => DType::I64,
            TensorData::U8(_) => DType::U8,
            TensorData::U16(_) => DType::U16,
            TensorData::U32(_) => DType::U32,
            TensorData::U64(_) => DType::U64,
            TensorData::Bool(_) => DType::Bool,
            TensorData::String(_) => DType::String,
        }
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        for_each_data!(self, v => v.len())
    }
    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a tensor could not be built or parsed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TensorError {
    /// The data length is not the product of the shape.
    #[error("shape {shape:?} holds {expected} elements but {found} were given")]
    ElementCount {
        /// The shape.
        shape: Vec<u64>,
        /// Elements the shape holds.
        expected: u64,
        /// Elements given.
        found: usize,
    },
    /// The shape's element count overflows or exceeds the limit.
    #[error("shape {shape:?} is too large")]
    ShapeTooLarge {
        /// The shape.
        shape: Vec<u64>,
    },
    /// More dimensions than any tensor may have.
    #[error("rank {rank} is above the limit of {max} dimensions")]
    RankTooLarge {
        /// The rank given.
        rank: usize,
        /// The limit.
        max: usize,
    },
    /// An unknown dtype name.
    #[error("unknown dtype {0:?} (expected one of f32, f64, i64, i32, i16, i8, u64, u32, u16, u8, bool, string)")]
    UnknownDType(String),
    /// A JSON value does not fit the dtype.
    #[error("element {index} ({value}) is not a valid {dtype}")]
    BadElement {
        /// Flat index of the element.
        index: usize,
        /// The JSON text of the value.
        value: String,
        /// The dtype expected.
        dtype: DType,
    },
    /// The JSON is not a tensor document.
    #[error("{0}")]
    Json(String),
    /// Nested arrays are ragged.
    #[error("nested arrays are ragged: {0}")]
    Ragged(String),
}

/// A tensor: a shape and row-major data whose length is the product of the shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    shape: Vec<u64>,
    data: TensorData,
}

/// Largest element count of any tensor built from untrusted input.
pub const MAX_ELEMENTS: u64 = 1 << 28;

/// Largest rank of any tensor. One limit for building, encoding, decoding and validating tensors, so a tensor that
/// was accepted can always be encoded and read back.
pub const MAX_RANK: usize = 16;

/// The element count of `shape`, if its rank and count are within [`MAX_RANK`] and [`MAX_ELEMENTS`].
fn element_count(shape: &[u64]) -> Result<u64, TensorError> {
    if shape.len() > MAX_RANK {
        return Err(TensorError::RankTooLarge { rank: shape.len(), max: MAX_RANK });
    }
    shape
        .iter()
        .try_fold(1u64, |acc, d| acc.checked_mul(*d))
        .filter(|n| *n <= MAX_ELEMENTS)
        .ok_or_else(|| TensorError::ShapeTooLarge { shape: shape.to_vec() })
}

const CANONICAL_NAN_F32: u32 = 0x7fc0_0000;
const CANONICAL_NAN_F64: u64 = 0x7ff8_0000_0000_0000;

impl Tensor {
    /// A tensor, checking that the data length matches the shape.
    pub fn new(shape: Vec<u64>, data: TensorData) -> Result<Self, TensorError> {
        let expected = element_count(&shape)?;
        if expected != data.len() as u64 {
            return Err(TensorError::ElementCount { shape, expected, found: data.len() });
        }
        Ok(Self { shape, data })
    }
    /// The shape.
    pub fn shape(&self) -> &[u64] {
        &self.shape
    }
    /// The elements.
    pub fn data(&self) -> &TensorData {
        &self.data
    }
    /// The dtype.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }
    /// Takes the shape and data apart.
    pub fn into_parts(self) -> (Vec<u64>, TensorData) {
        (self.shape, self.data)
    }

    /// The JSON view. Its elements serialize straight from the typed data (no intermediate `serde_json::Value`
    /// tree, which costs ~70 bytes per element): shortest round-trip decimals, non-finite floats as `"NaN"`,
    /// `"Infinity"`, `"-Infinity"`.
    pub fn to_json(&self) -> TensorJson {
        TensorJson {
            dtype: self.dtype().name().to_owned(),
            shape: self.shape.clone(),
            data: JsonData::Tensor(self.data.clone()),
        }
    }

    /// Builds a tensor of `dtype` and `shape` from flat JSON values.
    pub fn from_json_values(dtype: DType, shape: Vec<u64>, values: &[Value]) -> Result<Self, TensorError> {
        let expected = element_count(&shape)?;
        if expected != values.len() as u64 {
            return Err(TensorError::ElementCount { shape, expected, found: values.len() });
        }
        let bad = |index: usize, v: &Value| TensorError::BadElement { index, value: v.to_string(), dtype };
        fn float_of(v: &Value) -> Option<f64> {
            match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => match s.as_str() {
                    "NaN" => Some(f64::NAN),
                    "Infinity" => Some(f64::INFINITY),
                    "-Infinity" => Some(f64::NEG_INFINITY),
                    _ => None,
                },
                _ => None,
            }
        }
        fn ints<T: TryFrom<i64> + TryFrom<u64>>(
            values: &[Value],
            bad: impl Fn(usize, &Value) -> TensorError,
        ) -> Result<Vec<T>, TensorError> {
            values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let n = v.as_number().ok_or_else(|| bad(i, v))?;
                    if let Some(x) = n.as_i64() {
                        T::try_from(x).map_err(|_| bad(i, v))
                    } else if let Some(x) = n.as_u64() {
                        T::try_from(x).map_err(|_| bad(i, v))
                    } else {
                        Err(bad(i, v))
                    }
                })
                .collect()
        }
        let data = match dtype {
            DType::F32 => TensorData::F32(
                values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let x = float_of(v).ok_or_else(|| bad(i, v))?;
                        let y = x as f32;
                        // A finite number outside f32's range would silently become infinite.
                        if x.is_finite() && !y.is_finite() { Err(bad(i, v)) } else { Ok(y) }
                    })
                    .collect::<Result<_, _>>()?,
            ),
            DType::F64 => TensorData::F64(
                values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| float_of(v).ok_or_else(|| bad(i, v)))
                    .collect::<Result<_, _>>()?,
            ),
            DType::I8 => TensorData::I8(ints(values, bad)?),
            DType::I16 => TensorData::I16(ints(values, bad)?),
            DType::I32 => TensorData::I32(ints(values, bad)?),
            DType::I64 => TensorData::I64(ints(values, bad)?),
            DType::U8 => TensorData::U8(ints(values, bad)?),
            DType::U16 => TensorData::U16(ints(values, bad)?),
            DType::U32 => TensorData::U32(ints(values, bad)?),
            DType::U64 => TensorData::U64(ints(values, bad)?),
            DType::Bool => TensorData::Bool(
                values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v.as_bool().ok_or_else(|| bad(i, v)))
                    .collect::<Result<_, _>>()?,
            ),
            DType::String => TensorData::String(
                values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v.as_str().map(str::to_owned).ok_or_else(|| bad(i, v)))
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(Self { shape, data })
    }

    /// Parses one tensor from JSON: either the full form `{"dtype", "shape", "data"}` (data flat or nested),
    /// or a bare (possibly nested) array, whose dtype is `default_dtype` (the model's declared input type).
    pub fn from_json(value: &Value, default_dtype: Option<DType>) -> Result<Self, TensorError> {
        match value {
            Value::Object(obj) => {
                let dtype = match obj.get("dtype") {
                    Some(Value::String(s)) => {
                        DType::from_name(s).ok_or_else(|| TensorError::UnknownDType(s.clone()))?
                    }
                    Some(other) => {
                        return Err(TensorError::Json(format!("dtype must be a string, got {other}")));
                    }
                    None => default_dtype.ok_or_else(|| TensorError::Json("tensor has no dtype".into()))?,
                };
                let data = obj.get("data").ok_or_else(|| TensorError::Json("tensor has no data".into()))?;
                let (nested_shape, flat) = flatten(data)?;
                let shape = match obj.get("shape") {
                    Some(s) => serde_json::from_value::<Vec<u64>>(s.clone()).map_err(|_| {
                        TensorError::Json(format!("shape must be an array of non-negative integers, got {s}"))
                    })?,
                    None => nested_shape,
                };
                if let Some(extra) = obj.keys().find(|k| !matches!(k.as_str(), "dtype" | "shape" | "data")) {
                    return Err(TensorError::Json(format!("unknown tensor field {extra:?}")));
                }
                Self::from_json_values(dtype, shape, &flat)
            }
            Value::Array(_) => {
                let dtype = default_dtype.ok_or_else(|| TensorError::Json("a bare array needs a dtype".into()))?;
                let (shape, flat) = flatten(value)?;
                Self::from_json_values(dtype, shape, &flat)
            }
            other => {
                let dtype =
                    default_dtype.ok_or_else(|| TensorError::Json(format!("expected a tensor, got {other}")))?;
                Self::from_json_values(dtype, vec![], std::slice::from_ref(other))
            }
        }
    }
}

/// Dtype (ONNX code), rank, dims, then the elements little-endian (every NaN as the canonical quiet NaN; strings
/// length-prefixed).
impl Canonical for Tensor {
    const WHAT: &'static str = "tensor";

    fn encode(&self, w: &mut Writer) {
        w.u8(self.dtype() as u8);
        // `Tensor::new` bounds the rank by MAX_RANK (16), so it fits a byte.
        w.u8(self.shape.len() as u8);
        for d in &self.shape {
            w.u64(*d);
        }
        match &self.data {
            TensorData::F32(v) => {
                v.iter().for_each(|x| w.u32(if x.is_nan() { CANONICAL_NAN_F32 } else { x.to_bits() }))
            }
            TensorData::F64(v) => {
                v.iter().for_each(|x| w.u64(if x.is_nan() { CANONICAL_NAN_F64 } else { x.to_bits() }))
            }
            TensorData::I8(v) => v.iter().for_each(|x| w.raw(&x.to_le_bytes())),
            TensorData::I16(v) => v.iter().for_each(|x| w.raw(&x.to_le_bytes())),
            TensorData::I32(v) => v.iter().for_each(|x| w.raw(&x.to_le_bytes())),
            TensorData::I64(v) => v.iter().for_each(|x| w.raw(&x.to_le_bytes())),
            TensorData::U8(v) => w.raw(v),
            TensorData::U16(v) => v.iter().for_each(|x| w.u16(*x)),
            TensorData::U32(v) => v.iter().for_each(|x| w.u32(*x)),
            TensorData::U64(v) => v.iter().for_each(|x| w.u64(*x)),
            TensorData::Bool(v) => v.iter().for_each(|x| w.u8(u8::from(*x))),
            TensorData::String(v) => v.iter().for_each(|s| w.str(s)),
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let code = r.u8("tensor dtype")?;
        let dtype = DType::from_onnx(code.into())
            .ok_or(DecodeError::InvalidValue { what: "tensor dtype", value: code.into() })?;
        let rank = u64::from(r.u8("tensor rank")?);
        if rank > r.limits.max_rank {
            return Err(DecodeError::TooLarge { what: "tensor rank", len: rank, max: r.limits.max_rank });
        }
        let shape = (0..rank).map(|_| r.u64("tensor dim")).collect::<Result<Vec<_>, _>>()?;
        let max = r.limits.max_tensor_elements.min(MAX_ELEMENTS);
        let n = shape
            .iter()
            .try_fold(1u64, |acc, d| acc.checked_mul(*d))
            .filter(|n| *n <= max)
            .ok_or(DecodeError::TooLarge { what: "tensor elements", len: u64::MAX, max })? as usize;
        fn fixed<'a, const N: usize, T>(
            r: &mut Reader<'a>,
            n: usize,
            f: impl Fn([u8; N]) -> T,
        ) -> Result<Vec<T>, DecodeError> {
            let bytes = r.take(n.saturating_mul(N), "tensor data")?;
            Ok(bytes.chunks_exact(N).map(|c| f(c.try_into().expect("exact chunk"))).collect())
        }
        let data = match dtype {
            DType::F32 => TensorData::F32(fixed(r, n, f32::from_le_bytes)?),
            DType::F64 => TensorData::F64(fixed(r, n, f64::from_le_bytes)?),
            DType::I8 => TensorData::I8(fixed(r, n, i8::from_le_bytes)?),
            DType::I16 => TensorData::I16(fixed(r, n, i16::from_le_bytes)?),
            DType::I32 => TensorData::I32(fixed(r, n, i32::from_le_bytes)?),
            DType::I64 => TensorData::I64(fixed(r, n, i64::from_le_bytes)?),
            DType::U8 => TensorData::U8(fixed(r, n, u8::from_le_bytes)?),
            DType::U16 => TensorData::U16(fixed(r, n, u16::from_le_bytes)?),
            DType::U32 => TensorData::U32(fixed(r, n, u32::from_le_bytes)?),
            DType::U64 => TensorData::U64(fixed(r, n, u64::from_le_bytes)?),
            DType::Bool => {
                let bytes = r.take(n, "tensor data")?;
                let mut v = Vec::with_capacity(n);
                for b in bytes {
                    match b {
                        0 => v.push(false),
                        1 => v.push(true),
                        other => {
                            return Err(DecodeError::InvalidValue { what: "bool element", value: (*other).into() });
                        }
                    }
                }
                TensorData::Bool(v)
            }
            DType::String => {
                // Each string costs at least its 4-byte length prefix, which bounds `n` by the input.
                if n.saturating_mul(4) > r.remaining() {
                    return Err(DecodeError::UnexpectedEnd {
                        what: "string tensor",
                        needed: n * 4,
                        remaining: r.remaining(),
                    });
                }
                let v = (0..n).map(|_| r.str("string element").map(str::to_owned)).collect::<Result<_, _>>()?;
                TensorData::String(v)
            }
        };
        Ok(Self { shape, data })
    }
}

/// Flattens nested arrays into (shape, elements), rejecting ragged nesting. A scalar is shape [].
fn flatten(v: &Value) -> Result<(Vec<u64>, Vec<Value>), TensorError> {
    let mut shape = Vec::new();
    let mut cur = v;
    while let Value::Array(a) = cur {
        shape.push(a.len() as u64);
        if shape.len() > 16 {
            return Err(TensorError::Ragged("nesting deeper than 16".into()));
        }
        match a.first() {
            Some(first) => cur = first,
            None => break,
        }
    }
    let mut out = Vec::new();
    fn walk(v: &Value, depth: usize, shape: &[u64], out: &mut Vec<Value>) -> Result<(), TensorError> {
        if depth == shape.len() {
            if v.is_array() {
                return Err(TensorError::Ragged(format!("unexpected array at depth {depth}")));
            }
            out.push(v.clone());
            return Ok(());
        }
        let a = v.as_array().ok_or_else(|| TensorError::Ragged(format!("expected an array at depth {depth}")))?;
        if a.len() as u64 != shape[depth] {
            return Err(TensorError::Ragged(format!("length {} at depth {depth}, expected {}", a.len(), shape[depth])));
        }
        a.iter().try_for_each(|x| walk(x, depth + 1, shape, out))
    }
    walk(v, 0, &shape, &mut out)?;
    Ok((shape, out))
}

/// JSON view of a tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorJson {
    /// Short dtype name.
    pub dtype: String,
    /// Dimensions.
    pub shape: Vec<u64>,
    /// Flat row-major elements.
    pub data: JsonData,
}

/// A JSON tensor's elements: as parsed (from a client or a file), or a tensor's own data, serialized directly.
#[derive(Debug, Clone)]
pub enum JsonData {
    /// Parsed JSON (an array, possibly nested).
    Parsed(Value),
    /// A tensor's typed elements.
    Tensor(TensorData),
}

/// One float as JSON: the number, or `"NaN"`, `"Infinity"`, `"-Infinity"`.
fn serialize_float<S: serde::Serializer>(
    s: S,
    x: f64,
    finite: impl FnOnce(S) -> Result<S::Ok, S::Error>,
) -> Result<S::Ok, S::Error> {
    if x.is_nan() {
        s.serialize_str("NaN")
    } else if x == f64::INFINITY {
        s.serialize_str("Infinity")
    } else if x == f64::NEG_INFINITY {
        s.serialize_str("-Infinity")
    } else {
        finite(s)
    }
}

struct F32(f32);
struct F64(f64);

impl Serialize for F32 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The shortest decimal of the f32's exact value as an f64 (the receipt format since v1: `0.1f32` prints
        // `0.10000000149011612`), which parses back to the same f32 bits.
        let x = f64::from(self.0);
        serialize_float(s, x, |s| s.serialize_f64(x))
    }
}

impl Serialize for F64 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_float(s, self.0, |s| s.serialize_f64(self.0))
    }
}

impl Serialize for JsonData {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        fn seq<S: serde::Serializer, T: Serialize>(
            s: S,
            items: impl ExactSizeIterator<Item = T>,
        ) -> Result<S::Ok, S::Error> {
            let mut q = s.serialize_seq(Some(items.len()))?;
            for x in items {
                q.serialize_element(&x)?;
            }
            q.end()
        }
        match self {
            JsonData::Parsed(v) => v.serialize(s),
            JsonData::Tensor(d) => match d {
                TensorData::F32(v) => seq(s, v.iter().map(|x| F32(*x))),
                TensorData::F64(v) => seq(s, v.iter().map(|x| F64(*x))),
                TensorData::I8(v) => seq(s, v.iter()),
                TensorData::I16(v) => seq(s, v.iter()),
                TensorData::I32(v) => seq(s, v.iter()),
                TensorData::I64(v) => seq(s, v.iter()),
                TensorData::U8(v) => seq(s, v.iter()),
                TensorData::U16(v) => seq(s, v.iter()),
                TensorData::U32(v) => seq(s, v.iter()),
                TensorData::U64(v) => seq(s, v.iter()),
                TensorData::Bool(v) => seq(s, v.iter()),
                TensorData::String(v) => seq(s, v.iter()),
            },
        }
    }
}

impl<'de> Deserialize<'de> for JsonData {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(JsonData::Parsed)
    }
}

impl JsonData {
    /// The elements as a JSON value (for comparisons and tests; serialization never builds it).
    pub fn to_value(&self) -> Value {
        match self {
            JsonData::Parsed(v) => v.clone(),
            JsonData::Tensor(_) => serde_json::to_value(self).unwrap_or(Value::Null),
        }
    }
}

impl PartialEq for JsonData {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (JsonData::Tensor(a), JsonData::Tensor(b)) => a == b,
            _ => self.to_value() == other.to_value(),
        }
    }
}

/// Appends the canonical encoding of a tensor map.
pub fn encode_map(map: &TensorMap, w: &mut Writer) {
    w.len(map.len());
    for (name, t) in map {
        w.str(name);
        t.encode(w);
    }
}

/// Decodes a canonical tensor map, requiring strictly increasing names.
pub fn decode_map(r: &mut Reader<'_>) -> Result<TensorMap, DecodeError> {
    let n = r.count("tensor map size")?;
    let mut map = TensorMap::new();
    let mut last: Option<String> = None;
    for _ in 0..n {
        let name = r.str("tensor name")?.to_owned();
        if last.as_ref().is_some_and(|l| l.as_bytes() >= name.as_bytes()) {
            return Err(DecodeError::NonCanonical {
                what: "tensor map",
                reason: format!("name {name:?} out of order or repeated"),
            });
        }
        let t = Tensor::decode(r)?;
        last = Some(name.clone());
        map.insert(name, t);
    }
    Ok(map)
}

/// The digest of a tensor map's canonical encoding (domain `VOUCH_TENSORS_V1`).
pub fn digest_map(map: &TensorMap) -> Digest {
    let mut w = Writer::new();
    encode_map(map, &mut w);
    Digest::of(domain::TENSORS, &w.finish())
}

/// The JSON view of a tensor map.
pub fn map_to_json(map: &TensorMap) -> BTreeMap<String, TensorJson> {
    map.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()
}

/// Parses a map of full-form tensors (as in a receipt's `outputs`).
pub fn map_from_json(map: &BTreeMap<String, TensorJson>) -> Result<TensorMap, (String, TensorError)> {
    map.iter()
        .map(|(k, t)| {
            let dtype =
                DType::from_name(&t.dtype).ok_or_else(|| (k.clone(), TensorError::UnknownDType(t.dtype.clone())))?;
            let tensor = match &t.data {
                // A view of a tensor: its own data, with the dtype and shape checked.
                JsonData::Tensor(d) if d.dtype() == dtype => Tensor::new(t.shape.clone(), d.clone()),
                JsonData::Tensor(_) => Err(TensorError::Json(format!("data is not {}", t.dtype))),
                JsonData::Parsed(v) => {
                    let (_, flat) = flatten(v).map_err(|e| (k.clone(), e))?;
                    Tensor::from_json_values(dtype, t.shape.clone(), &flat)
                }
            };
            tensor.map(|t| (k.clone(), t)).map_err(|e| (k.clone(), e))
        })
        .collect()
}

/// Parses an input document: `{"inputs": {name: tensor}}` or the bare `{name: tensor}`, where each tensor
/// is the full form or a nested array whose dtype comes from `dtype_of(name)` (the model's signature).
pub fn parse_input_doc(
    doc: &Value,
    dtype_of: impl Fn(&str) -> Option<DType>,
) -> Result<TensorMap, (String, TensorError)> {
    let obj = doc
        .as_object()
        .ok_or_else(|| (String::new(), TensorError::Json("input document must be a JSON object".into())))?;
    let obj = match obj.get("inputs") {
        Some(Value::Object(inner)) if obj.len() == 1 => inner,
        _ => obj,
    };
    obj.iter()
        .map(|(name, v)| Tensor::from_json(v, dtype_of(name)).map(|t| (name.clone(), t)).map_err(|e| (name.clone(), e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_shorthand_takes_shape_from_nesting_and_dtype_from_model() {
        let doc = json!({"x": [[0.5, 1.0, 2.0], [3.0, 4.0, 5.0]]});
        let map = parse_input_doc(&doc, |_| Some(DType::F32)).unwrap();
        assert_eq!(map["x"].shape(), &[2, 3]);
        assert_eq!(map["x"].data(), &TensorData::F32(vec![0.5, 1.0, 2.0, 3.0, 4.0, 5.0]));
    }

    #[test]
    fn ragged_arrays_are_rejected() {
        let err = Tensor::from_json(&json!([[1, 2], [3]]), Some(DType::I64)).unwrap_err();
        assert!(matches!(err, TensorError::Ragged(_)), "{err}");
    }

    #[test]
    fn out_of_range_integers_are_rejected_with_their_index() {
        let err = Tensor::from_json(&json!({"dtype": "u8", "shape": [2], "data": [1, 256]}), None).unwrap_err();
        assert_eq!(err, TensorError::BadElement { index: 1, value: "256".into(), dtype: DType::U8 });
    }

    #[test]
    fn non_finite_floats_round_trip_through_json() {
        let t = Tensor::new(vec![3], TensorData::F32(vec![f32::NAN, f32::INFINITY, -0.0])).unwrap();
        let j = serde_json::to_value(t.to_json()).unwrap();
        assert_eq!(j["data"], json!(["NaN", "Infinity", -0.0]));
        let back = Tensor::from_json(&j, None).unwrap();
        let mut a = Writer::new();
        t.encode(&mut a);
        let mut b = Writer::new();
        back.encode(&mut b);
        assert_eq!(a.finish(), b.finish());
    }

    #[test]
    fn nan_payloads_do_not_change_the_encoding() {
        let a = Tensor::new(vec![1], TensorData::F32(vec![f32::from_bits(0x7fc0_0001)])).unwrap();
        let b = Tensor::new(vec![1], TensorData::F32(vec![f32::NAN])).unwrap();
        let (mut wa, mut wb) = (Writer::new(), Writer::new());
        a.encode(&mut wa);
        b.encode(&mut wb);
        assert_eq!(wa.finish(), wb.finish());
    }

    #[test]
    fn decode_rejects_huge_shapes_without_allocating() {
        let mut w = Writer::new();
        w.u8(DType::F32 as u8);
        w.u8(2);
        w.u64(u64::MAX);
        w.u64(2);
        let bytes = w.finish();
        assert!(matches!(Tensor::decode(&mut Reader::new(&bytes)), Err(DecodeError::TooLarge { .. })));
    }
}

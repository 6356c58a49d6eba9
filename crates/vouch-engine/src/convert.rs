//! Conversions between Vouch tensors and tract tensors.

use tract_onnx::prelude::{DatumType, Tensor as TTensor, tract_ndarray};
use vouch_codec::{Tensor, TensorData};

use crate::EngineError;

fn err(name: &str, reason: impl ToString) -> EngineError {
    EngineError::Tensor { name: name.to_owned(), reason: reason.to_string() }
}

/// A Vouch tensor as a tract tensor.
pub fn to_tract(name: &str, t: &Tensor) -> Result<TTensor, EngineError> {
    let shape: Vec<usize> = t
        .shape()
        .iter()
        .map(|d| usize::try_from(*d).map_err(|_| err(name, "dimension too large")))
        .collect::<Result<_, _>>()?;
    let r = match t.data() {
        TensorData::F32(v) => TTensor::from_shape(&shape, v),
        TensorData::F64(v) => TTensor::from_shape(&shape, v),
        TensorData::I8(v) => TTensor::from_shape(&shape, v),
        TensorData::I16(v) => TTensor::from_shape(&shape, v),
        TensorData::I32(v) => TTensor::from_shape(&shape, v),
        TensorData::I64(v) => TTensor::from_shape(&shape, v),
        TensorData::U8(v) => TTensor::from_shape(&shape, v),
        TensorData::U16(v) => TTensor::from_shape(&shape, v),
        TensorData::U32(v) => TTensor::from_shape(&shape, v),
        TensorData::U64(v) => TTensor::from_shape(&shape, v),
        TensorData::Bool(v) => TTensor::from_shape(&shape, v),
        TensorData::String(v) => tract_ndarray::ArrayD::from_shape_vec(shape, v.clone())
            .map(TTensor::from)
            .map_err(|e| tract_onnx::prelude::TractError::msg(e.to_string())),
    };
    r.map_err(|e| err(name, e))
}

/// A tract tensor as a Vouch tensor.
pub fn from_tract(name: &str, t: &TTensor) -> Result<Tensor, EngineError> {
    let shape: Vec<u64> = t.shape().iter().map(|d| *d as u64).collect();
    fn slice<T: tract_onnx::prelude::Datum + Clone>(name: &str, t: &TTensor) -> Result<Vec<T>, EngineError> {
        // `as_slice` needs a contiguous plain tensor; tract outputs always are, but check rather than assume.
        t.try_as_plain_ram().and_then(|v| v.as_slice::<T>().map(|s| s.to_vec())).map_err(|e| err(name, e))
    }
    let data = match t.datum_type() {
        DatumType::F32 => TensorData::F32(slice(name, t)?),
        DatumType::F64 => TensorData::F64(slice(name, t)?),
        DatumType::I8 => TensorData::I8(slice(name, t)?),
        DatumType::I16 => TensorData::I16(slice(name, t)?),
        DatumType::I32 => TensorData::I32(slice(name, t)?),
        DatumType::I64 => TensorData::I64(slice(name, t)?),
        DatumType::U8 => TensorData::U8(slice(name, t)?),
        DatumType::U16 => TensorData::U16(slice(name, t)?),
        DatumType::U32 => TensorData::U32(slice(name, t)?),
        DatumType::U64 => TensorData::U64(slice(name, t)?),
        DatumType::Bool => TensorData::Bool(slice(name, t)?),
        DatumType::String => TensorData::String(slice(name, t)?),
        DatumType::TDim => {
            let c = t.cast_to::<i64>().map_err(|e| err(name, e))?;
            TensorData::I64(slice(name, &c)?)
        }
        other => {
            return Err(err(name, format!("output dtype {other:?} is not supported by Vouch")));
        }
    };
    Tensor::new(shape, data).map_err(|e| err(name, e))
}

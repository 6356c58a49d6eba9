//! One file per instance of the batch STARK, each with its column layout, constraints, preprocessed columns and
//! trace behind [`Instance`](super::instance::Instance).

mod input;
mod linear;
mod lookup;
mod mac;
mod maxpool;
mod output;
mod params;
mod relu;
mod requant;
mod softmax;
mod sponge;

pub(crate) use input::Input;
pub(crate) use linear::Linear;
pub(crate) use lookup::{ENTRIES, Keys, Lookup, Table};
pub(crate) use mac::Mac;
pub(crate) use maxpool::MaxPool;
pub(crate) use output::Output;
pub(crate) use params::{Bytes, Packed, Params, count_bytes};
pub(crate) use relu::Relu;
pub(crate) use requant::Requant;
pub(crate) use softmax::Softmax;
pub(crate) use sponge::{Commits, Sponge};

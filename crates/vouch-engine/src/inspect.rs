//! Streaming inspection of ONNX files: signature, operators, opsets, with memory bounded by the largest
//! small message (a value info or an opset entry), never by the weights.
//!
//! Protobuf fields may come in any order and weights may sit anywhere, so this walks the wire format
//! directly: it descends into the graph, nodes, attributes and subgraphs, reads only the small messages
//! it needs (decoding them with tract's generated `prost` types), and seeks over everything else.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use prost::Message;
use serde::{Deserialize, Serialize};
use tract_onnx::pb;
use vouch_codec::{DType, Dim, TensorSpec};

/// Largest small message read into memory (value infos, opset entries, names).
const MAX_SMALL_MESSAGE: u64 = 1 << 20;
/// Deepest nesting of subgraphs (If/Loop bodies) followed.
const MAX_DEPTH: u32 = 16;

/// Why a file is not a model Vouch can host.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InspectError {
    /// Reading the file failed.
    #[error("reading model: {0}")]
    Io(String),
    /// Not an ONNX protobuf.
    #[error("not a valid ONNX model: {0}")]
    Malformed(String),
    /// The file ends inside a message.
    #[error("truncated ONNX model: {what} extends past the end of the file")]
    Truncated {
        /// The field being read.
        what: &'static str,
    },
    /// The model uses operators the engine does not implement.
    #[error("unsupported operator(s): {}", ops.join(", "))]
    UnsupportedOps {
        /// `domain:op` or `op` names.
        ops: Vec<String>,
    },
    /// The model's weights live outside the file.
    #[error(
        "tensor {tensor:?} uses external data; Vouch hosts self-contained models only (a model id must cover every byte)"
    )]
    ExternalData {
        /// The tensor.
        tensor: String,
    },
    /// An input or output has a type Vouch cannot carry.
    #[error("{role} {name:?} has type {onnx_type}, which Vouch does not support")]
    UnsupportedType {
        /// `input` or `output`.
        role: &'static str,
        /// Its name.
        name: String,
        /// The ONNX type.
        onnx_type: String,
    },
}

/// What inspection learns about a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// ONNX IR version.
    pub ir_version: i64,
    /// Operator set imports: domain (`""` = ai.onnx) -> version.
    pub opsets: BTreeMap<String, i64>,
    /// Producer name and version.
    pub producer: String,
    /// Graph inputs that are not initializers, in declaration order.
    pub inputs: Vec<TensorSpec>,
    /// Graph outputs, in declaration order.
    pub outputs: Vec<TensorSpec>,
    /// Operators used (including in subgraphs), as `op` or `domain:op`, with counts.
    pub ops: BTreeMap<String, u64>,
}

impl ModelInfo {
    /// The declared input with this name.
    pub fn input(&self, name: &str) -> Option<&TensorSpec> {
        self.inputs.iter().find(|s| s.name == name)
    }
}

struct Scanner<R> {
    r: R,
    pos: u64,
}

#[derive(Default)]
struct Found {
    ir_version: i64,
    producer: String,
    opsets: BTreeMap<String, i64>,
    inputs: Vec<pb::ValueInfoProto>,
    outputs: Vec<pb::ValueInfoProto>,
    initializers: BTreeSet<String>,
    ops: BTreeMap<String, u64>,
    graph_seen: bool,
}

impl<R: Read + Seek> Scanner<R> {
    fn byte(&mut self, what: &'static str) -> Result<u8, InspectError> {
        let mut b = [0u8; 1];
        match self.r.read_exact(&mut b) {
            Ok(()) => {
                self.pos += 1;
                Ok(b[0])
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(InspectError::Truncated { what }),
            Err(e) => Err(InspectError::Io(e.to_string())),
        }
    }

    fn varint(&mut self, what: &'static str) -> Result<u64, InspectError> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.byte(what)?;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(InspectError::Malformed(format!("varint too long in {what}")))
    }

    /// The length of a length-delimited field, checked against the enclosing message's end.
    fn len(&mut self, end: u64, what: &'static str) -> Result<u64, InspectError> {
        let n = self.varint(what)?;
        match self.pos.checked_add(n) {
            Some(e) if e <= end => Ok(n),
            _ => Err(InspectError::Truncated { what }),
        }
    }

    fn skip(&mut self, n: u64, what: &'static str) -> Result<(), InspectError> {
        let n_i64 = i64::try_from(n).map_err(|_| InspectError::Truncated { what })?;
        self.r.seek_relative(n_i64).map_err(|e| InspectError::Io(e.to_string()))?;
        self.pos += n;
        Ok(())
    }

    fn small(&mut self, n: u64, what: &'static str) -> Result<Vec<u8>, InspectError> {
        if n > MAX_SMALL_MESSAGE {
            return Err(InspectError::Malformed(format!("{what} is {n} bytes, larger than {MAX_SMALL_MESSAGE}")));
        }
        let mut buf = vec![0u8; n as usize];
        self.r.read_exact(&mut buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => InspectError::Truncated { what },
            _ => InspectError::Io(e.to_string()),
        })?;
        self.pos += n;
        Ok(buf)
    }

    fn string(&mut self, end: u64, what: &'static str) -> Result<String, InspectError> {
        let n = self.len(end, what)?;
        String::from_utf8(self.small(n, what)?).map_err(|_| InspectError::Malformed(format!("{what} is not UTF-8")))
    }

    /// Reads a field key; `None` at `end`.
    fn key(&mut self, end: u64, what: &'static str) -> Result<Option<(u64, u8)>, InspectError> {
        if self.pos >= end {
            return Ok(None);
        }
        let k = self.varint(what)?;
        let field = k >> 3;
        let wire = (k & 7) as u8;
        if field == 0 {
            return Err(InspectError::Malformed(format!("field number 0 in {what}")));
        }
        Ok(Some((field, wire)))
    }

    fn skip_field(&mut self, wire: u8, end: u64, what: &'static str) -> Result<(), InspectError> {
        match wire {
            0 => self.varint(what).map(drop),
            1 => self.fixed(8, end, what),
            5 => self.fixed(4, end, what),
            2 => {
                let n = self.len(end, what)?;
                self.skip(n, what)
            }
            w => Err(InspectError::Malformed(format!("wire type {w} in {what}"))),
        }
    }

    fn fixed(&mut self, n: u64, end: u64, what: &'static str) -> Result<(), InspectError> {
        if self.pos + n > end {
            return Err(InspectError::Truncated { what });
        }
        self.skip(n, what)
    }

    fn expect_len(&mut self, wire: u8, end: u64, what: &'static str) -> Result<u64, InspectError> {
        if wire != 2 {
            return Err(InspectError::Malformed(format!("{what} has wire type {wire}, expected a message")));
        }
        let n = self.len(end, what)?;
        Ok(self.pos + n)
    }

    fn model(&mut self, end: u64, f: &mut Found) -> Result<(), InspectError> {
        while let Some((field, wire)) = self.key(end, "model")? {
            match (field, wire) {
                (1, 0) => f.ir_version = self.varint("ir_version")? as i64,
                (2, 2) => f.producer = self.string(end, "producer_name")?,
                (3, 2) => {
                    let v = self.string(end, "producer_version")?;
                    f.producer = format!("{} {v}", f.producer).trim().to_owned();
                }
                (7, _) => {
                    let e = self.expect_len(wire, end, "graph")?;
                    self.graph(e, 0, f)?;
                    f.graph_seen = true;
                }
                (8, 2) => {
                    let n = self.len(end, "opset_import")?;
                    let op = pb::OperatorSetIdProto::decode(&*self.small(n, "opset_import")?)
                        .map_err(|e| InspectError::Malformed(format!("opset_import: {e}")))?;
                    f.opsets.insert(op.domain, op.version);
                }
                _ => self.skip_field(wire, end, "model field")?,
            }
        }
        Ok(())
    }

    fn graph(&mut self, end: u64, depth: u32, f: &mut Found) -> Result<(), InspectError> {
        if depth > MAX_DEPTH {
            return Err(InspectError::Malformed(format!("subgraphs nested deeper than {MAX_DEPTH}")));
        }
        while let Some((field, wire)) = self.key(end, "graph")? {
            match field {
                1 => {
                    let e = self.expect_len(wire, end, "node")?;
                    self.node(e, depth, f)?;
                }
                5 => {
                    let e = self.expect_len(wire, end, "initializer")?;
                    let name = self.tensor(e)?;
                    if depth == 0 {
                        f.initializers.insert(name);
                    }
                }
                15 => {
                    let e = self.expect_len(wire, end, "sparse_initializer")?;
                    let name = self.sparse_tensor(e)?;
                    if depth == 0 {
                        f.initializers.insert(name);
                    }
                }
                11 | 12 if depth == 0 => {
                    let what = if field == 11 { "graph input" } else { "graph output" };
                    if wire != 2 {
                        return Err(InspectError::Malformed(format!("{what} has wire type {wire}")));
                    }
                    let n = self.len(end, what)?;
                    let vi = pb::ValueInfoProto::decode(&*self.small(n, what)?)
                        .map_err(|e| InspectError::Malformed(format!("{what}: {e}")))?;
                    if field == 11 { f.inputs.push(vi) } else { f.outputs.push(vi) }
                }
                _ => self.skip_field(wire, end, "graph field")?,
            }
        }
        Ok(())
    }

    fn node(&mut self, end: u64, depth: u32, f: &mut Found) -> Result<(), InspectError> {
        let (mut op, mut domain) = (String::new(), String::new());
        while let Some((field, wire)) = self.key(end, "node")? {
            match (field, wire) {
                (4, 2) => op = self.string(end, "op_type")?,
                (7, 2) => domain = self.string(end, "domain")?,
                (5, 2) => {
                    let e = self.expect_len(wire, end, "attribute")?;
                    self.attribute(e, depth, f)?;
                }
                _ => self.skip_field(wire, end, "node field")?,
            }
        }
        if op.is_empty() {
            return Err(InspectError::Malformed("a node has no op_type".into()));
        }
        let key = if domain.is_empty() || domain == "ai.onnx" { op } else { format!("{domain}:{op}") };
        *f.ops.entry(key).or_default() += 1;
        Ok(())
    }

    fn attribute(&mut self, end: u64, depth: u32, f: &mut Found) -> Result<(), InspectError> {
        while let Some((field, wire)) = self.key(end, "attribute")? {
            match field {
                5 | 10 => {
                    let e = self.expect_len(wire, end, "attribute tensor")?;
                    self.tensor(e)?;
                }
                6 | 11 => {
                    let e = self.expect_len(wire, end, "attribute graph")?;
                    self.graph(e, depth + 1, f)?;
                }
                22 | 23 => {
                    let e = self.expect_len(wire, end, "attribute sparse tensor")?;
                    self.sparse_tensor(e)?;
                }
                _ => self.skip_field(wire, end, "attribute field")?,
            }
        }
        Ok(())
    }

    /// Skims a TensorProto: its name, refusing external data.
    fn tensor(&mut self, end: u64) -> Result<String, InspectError> {
        let mut name = String::new();
        let mut external = false;
        while let Some((field, wire)) = self.key(end, "tensor")? {
            match (field, wire) {
                (8, 2) => name = self.string(end, "tensor name")?,
                (13, _) => {
                    external = true;
                    self.skip_field(wire, end, "external_data")?
                }
                (14, 0) => external |= self.varint("data_location")? == 1,
                _ => self.skip_field(wire, end, "tensor field")?,
            }
        }
        if external {
            return Err(InspectError::ExternalData { tensor: name });
        }
        Ok(name)
    }

    fn sparse_tensor(&mut self, end: u64) -> Result<String, InspectError> {
        let mut name = String::new();
        while let Some((field, wire)) = self.key(end, "sparse tensor")? {
            match field {
                1 | 2 => {
                    let e = self.expect_len(wire, end, "sparse tensor part")?;
                    let n = self.tensor(e)?;
                    if field == 1 {
                        name = n;
                    }
                }
                _ => self.skip_field(wire, end, "sparse tensor field")?,
            }
        }
        Ok(name)
    }
}

fn spec(role: &'static str, vi: &pb::ValueInfoProto) -> Result<TensorSpec, InspectError> {
    use pb::type_proto::Value;
    let unsupported = |t: String| InspectError::UnsupportedType { role, name: vi.name.clone(), onnx_type: t };
    let t = match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(Value::TensorType(t)) => t,
        None => return Err(unsupported("no type".into())),
    };
    let dtype = DType::from_onnx(t.elem_type).ok_or_else(|| {
        let name = pb::tensor_proto::DataType::try_from(t.elem_type)
            .map(|d| d.as_str_name().to_lowercase())
            .unwrap_or_else(|_| format!("elem_type {}", t.elem_type));
        unsupported(name)
    })?;
    let shape = t.shape.as_ref().map(|s| {
        s.dim
            .iter()
            .map(|d| match &d.value {
                Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if *v >= 0 => Dim::Fixed(*v as u64),
                Some(pb::tensor_shape_proto::dimension::Value::DimParam(p)) if !p.is_empty() && p != "?" => {
                    Dim::Symbol(p.clone())
                }
                _ => Dim::Unknown,
            })
            .collect()
    });
    Ok(TensorSpec { name: vi.name.clone(), dtype, shape })
}

/// Inspects an ONNX model from any seekable reader of `len` bytes.
pub fn inspect_reader<R: Read + Seek>(r: R, len: u64) -> Result<ModelInfo, InspectError> {
    let mut s = Scanner { r, pos: 0 };
    let mut f = Found::default();
    s.model(len, &mut f)?;
    if !f.graph_seen {
        return Err(InspectError::Malformed("no graph".into()));
    }
    if f.outputs.is_empty() {
        return Err(InspectError::Malformed("the graph declares no outputs".into()));
    }
    let register = tract_onnx::onnx().op_register;
    let unsupported: Vec<String> = f
        .ops
        .keys()
        .filter(|k| {
            // tract registers operators by name, whatever their domain.
            let op = k.rsplit(':').next().unwrap_or(k);
            !register.0.contains_key(op)
        })
        .cloned()
        .collect();
    if !unsupported.is_empty() {
        return Err(InspectError::UnsupportedOps { ops: unsupported });
    }
    let inputs = f
        .inputs
        .iter()
        .filter(|vi| !f.initializers.contains(&vi.name))
        .map(|vi| spec("input", vi))
        .collect::<Result<_, _>>()?;
    let outputs = f.outputs.iter().map(|vi| spec("output", vi)).collect::<Result<_, _>>()?;
    Ok(ModelInfo { ir_version: f.ir_version, opsets: f.opsets, producer: f.producer, inputs, outputs, ops: f.ops })
}

/// Inspects the ONNX model at `path`.
pub fn inspect(path: &Path) -> Result<ModelInfo, InspectError> {
    let file = File::open(path).map_err(|e| InspectError::Io(e.to_string()))?;
    let len = file.metadata().map_err(|e| InspectError::Io(e.to_string()))?.len();
    inspect_reader(BufReader::with_capacity(64 * 1024, file), len)
}

//! A bounded GGUF header inspection: what a pushed language model is, read without trusting the file. Every count,
//! string length, array length, tensor rank, dimension, type and offset is checked against fixed limits and the file's
//! own size before anything is allocated or skipped, so a hostile header cannot make the node allocate beyond the
//! file or read past its end. Large metadata arrays (the vocabulary, merges, scores) are walked, never kept.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};

use serde::{Deserialize, Serialize};

/// Why a file is not a GGUF model this node takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GgufError {
    /// Not a GGUF file (magic).
    #[error("not a GGUF file (magic {0:02x?})")]
    NotGguf([u8; 4]),
    /// A GGUF version this build does not read.
    #[error("GGUF version {0} is not supported (2 and 3 are)")]
    Version(u32),
    /// The file ends inside the header.
    #[error("truncated GGUF: {0}")]
    Truncated(String),
    /// A count, length or offset beyond the limits or the file.
    #[error("GGUF header out of bounds: {0}")]
    Bounds(String),
    /// A malformed value.
    #[error("malformed GGUF: {0}")]
    Malformed(String),
    /// The metadata lacks a key every model has.
    #[error("GGUF metadata has no {0}")]
    Missing(&'static str),
    /// Reading the file failed.
    #[error("reading the GGUF file: {0}")]
    Io(String),
    /// A model of an architecture the engine does not generate text with.
    #[error("architecture {0:?} is not supported for text generation by this node's engine")]
    Architecture(String),
    /// A GGUF that is not a model (an adapter, a projector).
    #[error("the GGUF is a {0:?}, not a model")]
    NotAModel(String),
}

/// The architectures this build's engine generates text with: llama.cpp's (`src/llama-arch.cpp` of the vendored
/// release) less the encoders, embedding models, vision and audio towers and speculative drafters it also reads.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &[
    "llama",
    "llama4",
    "deci",
    "falcon",
    "grok",
    "gpt2",
    "gptj",
    "gptneox",
    "mpt",
    "baichuan",
    "starcoder",
    "refact",
    "bloom",
    "stablelm",
    "qwen",
    "qwen2",
    "qwen2moe",
    "qwen2vl",
    "qwen3",
    "qwen3moe",
    "qwen3next",
    "qwen3vl",
    "qwen3vlmoe",
    "qwen35",
    "qwen35moe",
    "clef",
    "qwen4exp",
    "phi2",
    "phi3",
    "phimoe",
    "plamo",
    "plamo2",
    "plamo3",
    "codeshell",
    "orion",
    "internlm2",
    "minicpm",
    "minicpm3",
    "gemma",
    "gemma2",
    "gemma3",
    "gemma3n",
    "gemma4",
    "starcoder2",
    "mamba",
    "mamba2",
    "maple",
    "jamba",
    "falcon-h1",
    "xverse",
    "command-r",
    "cohere2",
    "cohere2moe",
    "dbrx",
    "olmo",
    "olmo2",
    "olmoe",
    "muse-glimmer",
    "openelm",
    "arctic",
    "deepseek",
    "deepseek2",
    "deepseek32",
    "deepseek4",
    "chatglm",
    "glm4",
    "glm4moe",
    "glm-dsa",
    "bitnet",
    "jais",
    "jais2",
    "nemotron",
    "nemotron_h",
    "nemotron_h_moe",
    "exaone",
    "exaone4",
    "exaone-moe",
    "rwkv6",
    "rwkv6qwen2",
    "rwkv7",
    "arwkv7",
    "granite",
    "granitemoe",
    "granitehybrid",
    "graniteswitch",
    "granite_swa",
    "chameleon",
    "plm",
    "bailingmoe",
    "bailingmoe2",
    "bailingmoe3",
    "dots1",
    "dots3note",
    "arcee",
    "afmoe",
    "laguna",
    "ernie4_5",
    "ernie4_5-moe",
    "hunyuan-moe",
    "hunyuan-dense",
    "hy_v3",
    "hy_v4",
    "smollm3",
    "gpt-oss",
    "lfm2",
    "lfm2moe",
    "dream",
    "smallthinker",
    "llada",
    "llada-moe",
    "seed_oss",
    "grovemoe",
    "apertus",
    "minimax-01",
    "hrm_text",
    "minimax-m2",
    "minimax-m3",
    "rnd1",
    "pangu-embedded",
    "mistral3",
    "mistral4",
    "mimo2",
    "step35",
    "spark2_5",
    "maincoder",
    "kimi-linear",
    "kimi-k3",
    "glm5-next",
    "talkie",
    "mellum",
    "nanbeige",
];

/// Limits on what a header may state.
const MAX_KV: u64 = 1 << 16;
const MAX_TENSORS: u64 = 1 << 20;
const MAX_STRING: u64 = 4 << 20;
const MAX_ARRAY: u64 = 1 << 24;
const MAX_DIMS: u32 = 8;

/// What a GGUF model is, from its header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GgufInfo {
    /// GGUF format version.
    pub version: u32,
    /// `general.architecture` (e.g. `llama`, `qwen2`, `gemma3`).
    pub architecture: String,
    /// `general.name`, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Sum of every tensor's element count.
    pub parameters: u64,
    /// `{arch}.context_length`: the context the model was trained for.
    pub context_length: u64,
    /// Tensor count per storage type (`Q4_K`, `F32`...).
    pub tensor_types: BTreeMap<String, u64>,
    /// `tokenizer.ggml.model` (`gpt2`, `llama`...).
    pub tokenizer: String,
    /// Tokens in the vocabulary.
    pub vocab_size: u64,
    /// `tokenizer.chat_template`, if the file has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_template: Option<String>,
    /// `tokenizer.ggml.bos_token_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token: Option<u32>,
    /// Where the tensor data starts (aligned).
    pub data_offset: u64,
}

/// A metadata value this inspection keeps (small scalars and the strings it needs; arrays only by length).
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Int(i128),
    Float(f64),
    Bool(bool),
    Str(String),
    Array { len: u64 },
}

struct Reader<R> {
    r: R,
    pos: u64,
    len: u64,
}

impl<R: Read> Reader<R> {
    fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>, GgufError> {
        if n > self.len.saturating_sub(self.pos) {
            return Err(GgufError::Truncated(format!("{what} needs {n} bytes, {} left", self.len - self.pos)));
        }
        let mut buf = vec![0u8; n as usize];
        self.r.read_exact(&mut buf).map_err(|e| GgufError::Io(e.to_string()))?;
        self.pos += n;
        Ok(buf)
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), GgufError> {
        if n > self.len.saturating_sub(self.pos) {
            return Err(GgufError::Truncated(format!("{what} needs {n} bytes, {} left", self.len - self.pos)));
        }
        let copied = std::io::copy(&mut (&mut self.r).take(n), &mut std::io::sink())
            .map_err(|e| GgufError::Io(e.to_string()))?;
        if copied != n {
            return Err(GgufError::Truncated(what.to_owned()));
        }
        self.pos += n;
        Ok(())
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        let b = self.bytes(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&b);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A length or count, bounded by `max` and by the bytes left (each item takes at least `min_item` bytes).
    fn count(&mut self, what: &str, max: u64, min_item: u64) -> Result<u64, GgufError> {
        let n = self.u64(what)?;
        let left = self.len.saturating_sub(self.pos);
        if n > max || n.saturating_mul(min_item) > left {
            return Err(GgufError::Bounds(format!("{what} {n} (limit {max}, {left} bytes left)")));
        }
        Ok(n)
    }

    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let n = self.count(what, MAX_STRING, 1)?;
        String::from_utf8(self.bytes(n, what)?).map_err(|_| GgufError::Malformed(format!("{what} is not UTF-8")))
    }

    fn skip_string(&mut self, what: &str) -> Result<(), GgufError> {
        let n = self.count(what, MAX_STRING, 1)?;
        self.skip(n, what)
    }

    /// A scalar of metadata type `t`, or `None` for strings and arrays.
    fn scalar(&mut self, t: u32, what: &str) -> Result<Option<Value>, GgufError> {
        Ok(Some(match t {
            0 => Value::Int(self.array::<1>(what)?[0].into()),
            1 => Value::Int(i8::from_le_bytes(self.array(what)?).into()),
            2 => Value::Int(u16::from_le_bytes(self.array(what)?).into()),
            3 => Value::Int(i16::from_le_bytes(self.array(what)?).into()),
            4 => Value::Int(self.u32(what)?.into()),
            5 => Value::Int(i32::from_le_bytes(self.array(what)?).into()),
            6 => Value::Float(f32::from_le_bytes(self.array(what)?).into()),
            7 => match self.array::<1>(what)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(GgufError::Malformed(format!("{what}: bool {b}"))),
            },
            10 => Value::Int(self.u64(what)?.into()),
            11 => Value::Int(i64::from_le_bytes(self.array(what)?).into()),
            12 => Value::Float(f64::from_le_bytes(self.array(what)?)),
            8 | 9 => return Ok(None),
            other => return Err(GgufError::Malformed(format!("{what}: metadata type {other}"))),
        }))
    }

    /// A value of metadata type `t`; strings are kept only when `keep`; arrays are walked and kept by length.
    fn value(&mut self, t: u32, key: &str, keep: bool) -> Result<Value, GgufError> {
        if let Some(v) = self.scalar(t, key)? {
            return Ok(v);
        }
        if t == 8 {
            if keep {
                return Ok(Value::Str(self.string(key)?));
            }
            self.skip_string(key)?;
            return Ok(Value::Str(String::new()));
        }
        let item = self.u32(key)?;
        let width = match item {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            8 => 0,
            other => return Err(GgufError::Malformed(format!("{key}: array of type {other}"))),
        };
        let len = self.count(key, MAX_ARRAY, if width == 0 { 8 } else { width })?;
        if width == 0 {
            for _ in 0..len {
                self.skip_string(key)?;
            }
        } else {
            self.skip(len * width, key)?;
        }
        Ok(Value::Array { len })
    }
}

/// Bytes of `elements` values of ggml type `t`, and the type's name; `None` for a type this build does not know.
fn ggml_type(t: u32) -> Option<(&'static str, u64, u64)> {
    // (name, block size in elements, bytes per block)
    Some(match t {
        0 => ("F32", 1, 4),
        1 => ("F16", 1, 2),
        2 => ("Q4_0", 32, 18),
        3 => ("Q4_1", 32, 20),
        6 => ("Q5_0", 32, 22),
        7 => ("Q5_1", 32, 24),
        8 => ("Q8_0", 32, 34),
        9 => ("Q8_1", 32, 36),
        10 => ("Q2_K", 256, 84),
        11 => ("Q3_K", 256, 110),
        12 => ("Q4_K", 256, 144),
        13 => ("Q5_K", 256, 176),
        14 => ("Q6_K", 256, 210),
        15 => ("Q8_K", 256, 292),
        16 => ("IQ2_XXS", 256, 66),
        17 => ("IQ2_XS", 256, 74),
        18 => ("IQ3_XXS", 256, 98),
        19 => ("IQ1_S", 256, 50),
        20 => ("IQ4_NL", 32, 18),
        21 => ("IQ3_S", 256, 110),
        22 => ("IQ2_S", 256, 82),
        23 => ("IQ4_XS", 256, 136),
        24 => ("I8", 1, 1),
        25 => ("I16", 1, 2),
        26 => ("I32", 1, 4),
        27 => ("I64", 1, 8),
        28 => ("F64", 1, 8),
        29 => ("IQ1_M", 256, 56),
        30 => ("BF16", 1, 2),
        34 => ("TQ1_0", 256, 54),
        35 => ("TQ2_0", 256, 66),
        39 => ("MXFP4", 32, 17),
        _ => return None,
    })
}

/// Inspects the GGUF header of a file of `len` bytes.
pub fn inspect<R: Read + Seek>(mut r: R, len: u64) -> Result<GgufInfo, GgufError> {
    r.seek(SeekFrom::Start(0)).map_err(|e| GgufError::Io(e.to_string()))?;
    let mut rd = Reader { r, pos: 0, len };
    let magic = rd.array::<4>("magic")?;
    if &magic != b"GGUF" {
        return Err(GgufError::NotGguf(magic));
    }
    let version = rd.u32("version")?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::Version(version));
    }
    // Each tensor info takes at least 4 + 8 + 4 + 8 + 4 bytes; each key-value at least 8 + 4 + 1.
    let n_tensors = rd.count("tensor count", MAX_TENSORS, 28)?;
    let n_kv = rd.count("metadata count", MAX_KV, 13)?;
    let mut meta: BTreeMap<String, Value> = BTreeMap::new();
    for _ in 0..n_kv {
        let key = rd.string("metadata key")?;
        let t = rd.u32("metadata type")?;
        let keep = key == "general.architecture"
            || key == "general.name"
            || key == "tokenizer.ggml.model"
            || key == "tokenizer.chat_template"
            || key == "general.type";
        let v = rd.value(t, &key, keep)?;
        if meta.insert(key.clone(), v).is_some() {
            return Err(GgufError::Malformed(format!("metadata key {key:?} twice")));
        }
    }
    let string = |k: &'static str| match meta.get(k) {
        Some(Value::Str(s)) => Ok(s.clone()),
        Some(_) => Err(GgufError::Malformed(format!("{k} is not a string"))),
        None => Err(GgufError::Missing(k)),
    };
    let int = |k: &str| match meta.get(k) {
        Some(Value::Int(v)) => u64::try_from(*v).ok(),
        _ => None,
    };
    let architecture = string("general.architecture")?;
    if let Ok(kind) = string("general.type")
        && kind != "model"
    {
        return Err(GgufError::NotAModel(kind));
    }
    let alignment = int("general.alignment").unwrap_or(32);
    if alignment == 0 || !alignment.is_power_of_two() || alignment > 1 << 20 {
        return Err(GgufError::Malformed(format!("alignment {alignment}")));
    }
    let mut tensors: Vec<(String, u64, u64)> = Vec::with_capacity(n_tensors.min(1 << 16) as usize);
    let mut tensor_types: BTreeMap<String, u64> = BTreeMap::new();
    let mut parameters: u64 = 0;
    for _ in 0..n_tensors {
        let name = rd.string("tensor name")?;
        let n_dims = rd.u32("tensor rank")?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(GgufError::Bounds(format!("tensor {name:?} has rank {n_dims}")));
        }
        let mut elements: u64 = 1;
        for _ in 0..n_dims {
            let d = rd.u64("tensor dimension")?;
            elements = elements.checked_mul(d).filter(|e| *e <= len.saturating_mul(8)).ok_or_else(|| {
                GgufError::Bounds(format!("tensor {name:?} has more elements than the file could hold"))
            })?;
        }
        let t = rd.u32("tensor type")?;
        let (type_name, block, block_bytes) =
            ggml_type(t).ok_or_else(|| GgufError::Malformed(format!("tensor {name:?} has unknown type {t}")))?;
        if !elements.is_multiple_of(block) {
            return Err(GgufError::Malformed(format!("tensor {name:?}: {elements} elements in blocks of {block}")));
        }
        let bytes = (elements / block)
            .checked_mul(block_bytes)
            .ok_or_else(|| GgufError::Bounds(format!("tensor {name:?} size")))?;
        let offset = rd.u64("tensor offset")?;
        if offset % alignment != 0 {
            return Err(GgufError::Malformed(format!("tensor {name:?} offset {offset} is not aligned to {alignment}")));
        }
        *tensor_types.entry(type_name.to_owned()).or_insert(0) += 1;
        parameters = parameters.saturating_add(elements);
        tensors.push((name, offset, bytes));
    }
    let data_offset = rd.pos.div_ceil(alignment) * alignment;
    let data_len = len.checked_sub(data_offset).ok_or_else(|| GgufError::Truncated("no tensor data".into()))?;
    for (name, offset, bytes) in &tensors {
        if offset.checked_add(*bytes).is_none_or(|end| end > data_len) {
            return Err(GgufError::Bounds(format!(
                "tensor {name:?} at offset {offset} with {bytes} bytes runs past the end of the file ({data_len} data bytes)"
            )));
        }
    }
    let vocab_size = match meta.get("tokenizer.ggml.tokens") {
        Some(Value::Array { len }) => *len,
        _ => return Err(GgufError::Missing("tokenizer.ggml.tokens")),
    };
    let token = |k: &str| int(k).and_then(|v| u32::try_from(v).ok()).filter(|v| u64::from(*v) < vocab_size);
    if !SUPPORTED_ARCHITECTURES.contains(&architecture.as_str()) {
        return Err(GgufError::Architecture(architecture));
    }
    Ok(GgufInfo {
        version,
        context_length: int(&format!("{architecture}.context_length")).unwrap_or(0),
        name: string("general.name").ok(),
        parameters,
        tensor_types,
        tokenizer: string("tokenizer.ggml.model")?,
        vocab_size,
        chat_template: string("tokenizer.chat_template").ok(),
        bos_token: token("tokenizer.ggml.bos_token_id"),
        eos_token: token("tokenizer.ggml.eos_token_id"),
        data_offset,
        architecture,
    })
}

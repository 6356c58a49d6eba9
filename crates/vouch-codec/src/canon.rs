//! The canonical byte encoding: the [`Canonical`] trait every hashed or signed structure implements, and its
//! primitives (little-endian integers, `u32`-length-prefixed byte strings, a bounded reader that never panics or
//! over-allocates on hostile input).

use thiserror::Error;

/// Why a byte string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ended before a field was complete.
    #[error("unexpected end of input reading {what}: needed {needed} bytes, {remaining} left")]
    UnexpectedEnd {
        /// The field being read.
        what: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the input.
        remaining: usize,
    },
    /// A length or count is above the decoder's limit.
    #[error("{what} too large: {len} > limit {max}")]
    TooLarge {
        /// The field being read.
        what: &'static str,
        /// The length found.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A tag or enum value is not one this version knows.
    #[error("invalid {what}: {value}")]
    InvalidValue {
        /// The field being read.
        what: &'static str,
        /// The value found.
        value: u64,
    },
    /// A string is not valid UTF-8.
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 {
        /// The field being read.
        what: &'static str,
    },
    /// Bytes were left after the value.
    #[error("{count} trailing bytes after {what}")]
    TrailingBytes {
        /// The value decoded.
        what: &'static str,
        /// How many bytes were left.
        count: usize,
    },
    /// The bytes are well-formed but break a rule of the format (ordering, uniqueness, shape).
    #[error("non-canonical {what}: {reason}")]
    NonCanonical {
        /// The value decoded.
        what: &'static str,
        /// The rule broken.
        reason: String,
    },
    /// The magic bytes or format version are not ones this build reads.
    #[error("unknown {what} format version {found} (this build reads {supported})")]
    UnknownVersion {
        /// The value decoded.
        what: &'static str,
        /// The version found.
        found: u16,
        /// The version supported.
        supported: u16,
    },
}

/// Size limits applied while decoding untrusted bytes.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest number of elements in one tensor.
    pub max_tensor_elements: u64,
    /// Largest byte string (tensor data, proof, quote...).
    pub max_bytes: u64,
    /// Largest number of entries in a list or map.
    pub max_items: u64,
    /// Largest tensor rank.
    pub max_rank: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_tensor_elements: crate::tensor::MAX_ELEMENTS,
            max_bytes: 1 << 30,
            max_items: 1 << 16,
            max_rank: crate::tensor::MAX_RANK as u64,
        }
    }
}

/// Appends canonical encodings to a byte vector.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }
    /// The bytes written.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
    /// Raw bytes, no length prefix (fixed-size fields).
    pub fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    /// One byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    /// `u16`, little-endian.
    pub fn u16(&mut self, v: u16) {
        self.raw(&v.to_le_bytes());
    }
    /// `u32`, little-endian.
    pub fn u32(&mut self, v: u32) {
        self.raw(&v.to_le_bytes());
    }
    /// `u64`, little-endian.
    pub fn u64(&mut self, v: u64) {
        self.raw(&v.to_le_bytes());
    }
    /// A length: `u32` little-endian. Lengths above `u32::MAX` cannot be encoded; callers bound them first.
    pub fn len(&mut self, n: usize) {
        let n = u32::try_from(n).expect("canonical lengths are bounded far below u32::MAX by callers");
        self.u32(n);
    }
    /// A byte string: `u32` length, then the bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.raw(b);
    }
    /// A UTF-8 string, encoded as a byte string.
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
}

/// Reads canonical encodings from a byte slice, checking every length against the remaining input
/// and the [`Limits`] before allocating.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    /// The limits in force.
    pub limits: Limits,
}

impl<'a> Reader<'a> {
    /// A reader over `buf` with the default limits.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, limits: Limits::default() }
    }
    /// A reader with explicit limits.
    pub fn with_limits(buf: &'a [u8], limits: Limits) -> Self {
        Self { buf, limits }
    }
    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }
    /// Fails unless everything was read.
    pub fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        if self.buf.is_empty() { Ok(()) } else { Err(DecodeError::TrailingBytes { what, count: self.buf.len() }) }
    }
    /// The next `n` raw bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::UnexpectedEnd { what, needed: n, remaining: self.buf.len() });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    /// A fixed-size array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }
    /// One byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }
    /// `u16`, little-endian.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    /// `u32`, little-endian.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    /// `u64`, little-endian.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    /// A count of list items, checked against `max_items`.
    pub fn count(&mut self, what: &'static str) -> Result<usize, DecodeError> {
        let n = u64::from(self.u32(what)?);
        if n > self.limits.max_items {
            return Err(DecodeError::TooLarge { what, len: n, max: self.limits.max_items });
        }
        Ok(n as usize)
    }
    /// A length-prefixed byte string, checked against `max_bytes` and the input left.
    pub fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let n = u64::from(self.u32(what)?);
        if n > self.limits.max_bytes {
            return Err(DecodeError::TooLarge { what, len: n, max: self.limits.max_bytes });
        }
        self.take(n as usize, what)
    }
    /// A length-prefixed UTF-8 string.
    pub fn str(&mut self, what: &'static str) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes(what)?).map_err(|_| DecodeError::InvalidUtf8 { what })
    }
    /// A boolean byte: exactly 0 or 1.
    pub fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(DecodeError::InvalidValue { what, value: v.into() }),
        }
    }
}

/// The one canonical byte encoding of a structure: the bytes that are hashed and signed. Every hashed or signed
/// structure of Vouch implements it: receipt bodies, receipts, anchors, agreement rules and tensors here;
/// transactions ([`crate::tx`]); the ledger's genesis, records and events; the chain's headers, blocks and
/// transaction records. JSON is a view of the same values and is never hashed.
pub trait Canonical: Sized {
    /// What decoding errors call it.
    const WHAT: &'static str;

    /// Appends the canonical bytes.
    fn encode(&self, w: &mut Writer);

    /// Reads one value (bounded by the reader's limits; never panics on hostile input).
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// The canonical bytes.
    fn to_canonical(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode(&mut w);
        w.finish()
    }

    /// Decodes exactly one value from `bytes` (default limits).
    fn from_canonical(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = Self::decode(&mut r)?;
        r.finish(Self::WHAT)?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_rejects_lengths_past_the_input() {
        let mut w = Writer::new();
        w.u32(10);
        w.raw(b"abc");
        let bytes = w.finish();
        let err = Reader::new(&bytes).bytes("blob").unwrap_err();
        assert_eq!(err, DecodeError::UnexpectedEnd { what: "blob", needed: 10, remaining: 3 });
    }

    #[test]
    fn reader_rejects_lengths_over_the_limit_before_allocating() {
        let bytes = u32::MAX.to_le_bytes();
        let limits = Limits { max_bytes: 16, ..Limits::default() };
        let err = Reader::with_limits(&bytes, limits).bytes("blob").unwrap_err();
        assert_eq!(err, DecodeError::TooLarge { what: "blob", len: u32::MAX.into(), max: 16 });
    }

    #[test]
    fn bool_must_be_zero_or_one() {
        assert_eq!(Reader::new(&[2]).bool("flag").unwrap_err(), DecodeError::InvalidValue { what: "flag", value: 2 });
    }
}

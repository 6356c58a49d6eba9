//! Model ids: CIDv1, codec `raw`, multihash blake3-256 of the exact file bytes, shown in multibase
//! base32 (`b...`). The id is the model: two different files can never share one.

use std::fmt;
use std::str::FromStr;

use cid::Cid;
use multihash::Multihash;
use thiserror::Error;

/// Multicodec code of `raw` binary content.
pub const RAW_CODEC: u64 = 0x55;
/// Multihash code of blake3 (256-bit output).
pub const BLAKE3_MULTIHASH: u64 = 0x1e;

/// Why a string or byte string is not a Vouch model id.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ModelIdError {
    /// Not a CID at all.
    #[error("not a CID: {0}")]
    Parse(String),
    /// A CID, but not CIDv1 raw blake3-256.
    #[error(
        "unsupported CID: expected CIDv1, codec raw (0x55), blake3-256 (0x1e); got version {version:?}, codec {codec:#x}, hash {hash:#x} of {len} bytes"
    )]
    Unsupported {
        /// CID version.
        version: u64,
        /// Content codec.
        codec: u64,
        /// Multihash code.
        hash: u64,
        /// Digest length.
        len: usize,
    },
}

/// A model id: the blake3-256 digest of the model's bytes, as a CIDv1.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelId([u8; 32]);

impl ModelId {
    /// The id of content whose blake3 digest is `digest`.
    pub fn from_blake3(digest: [u8; 32]) -> Self {
        Self(digest)
    }
    /// The id of `bytes`.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }
    /// The raw blake3 digest.
    pub fn digest(&self) -> &[u8; 32] {
        &self.0
    }
    fn cid(&self) -> Cid {
        let mh = Multihash::<64>::wrap(BLAKE3_MULTIHASH, &self.0).expect("32 bytes fit in 64");
        Cid::new_v1(RAW_CODEC, mh)
    }
    /// The binary CID (the canonical encoding of an id).
    pub fn to_cid_bytes(&self) -> Vec<u8> {
        self.cid().to_bytes()
    }
    /// Parses a binary CID.
    pub fn from_cid_bytes(bytes: &[u8]) -> Result<Self, ModelIdError> {
        let cid = Cid::try_from(bytes).map_err(|e| ModelIdError::Parse(e.to_string()))?;
        Self::from_cid(&cid)
    }
    fn from_cid(cid: &Cid) -> Result<Self, ModelIdError> {
        let mh = cid.hash();
        let unsupported = || ModelIdError::Unsupported {
            version: cid.version() as u64,
            codec: cid.codec(),
            hash: mh.code(),
            len: mh.digest().len(),
        };
        if cid.version() != cid::Version::V1 || cid.codec() != RAW_CODEC || mh.code() != BLAKE3_MULTIHASH {
            return Err(unsupported());
        }
        let digest: [u8; 32] = mh.digest().try_into().map_err(|_| unsupported())?;
        Ok(Self(digest))
    }
    /// Whether `s` looks like a model id rather than a model name (`b` + base32, right length).
    pub fn looks_like_id(s: &str) -> bool {
        s.len() > 40 && s.starts_with('b') && s.parse::<ModelId>().is_ok()
    }
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.cid(), f)
    }
}

impl fmt::Debug for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModelId({self})")
    }
}

impl FromStr for ModelId {
    type Err = ModelIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let cid = Cid::try_from(s).map_err(|e| ModelIdError::Parse(e.to_string()))?;
        // Only the canonical text form (base32 lower) is accepted, so one id has one spelling.
        let id = Self::from_cid(&cid)?;
        if id.to_string() != s {
            return Err(ModelIdError::Parse(format!("not in canonical base32 form (expected {id})")));
        }
        Ok(id)
    }
}

impl serde::Serialize for ModelId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ModelId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_of_empty_input_matches_independent_construction() {
        // Expected value computed independently: python3 base64.b32encode(bytes([1,0x55,0x1e,0x20]) + blake3(b"")).
        // CIDv1 = varint(1) varint(0x55) varint(0x1e) varint(32) digest, base32 lower with 'b' prefix.
        let digest = *blake3::hash(b"").as_bytes();
        let mut bytes = vec![0x01, 0x55, 0x1e, 0x20];
        bytes.extend_from_slice(&digest);
        let id = ModelId::of_bytes(b"");
        assert_eq!(id.to_cid_bytes(), bytes);
        assert_eq!(id.to_string(), "bafkr4ifpcne3t5pzugtkaqcn5i3nzskjtpfslsnnyejlpte2spfoihzsmi");
        assert_eq!(id.to_string().parse::<ModelId>().unwrap(), id);
    }

    #[test]
    fn rejects_other_cids_and_spellings() {
        let id = ModelId::of_bytes(b"x").to_string();
        assert!(matches!(id.to_uppercase().parse::<ModelId>(), Err(ModelIdError::Parse(_))));
        assert!(matches!("bafy".parse::<ModelId>(), Err(ModelIdError::Parse(_))));
        // A sha2-256 raw CIDv1 is a valid CID but not a Vouch model id.
        let sha = Cid::new_v1(RAW_CODEC, Multihash::<64>::wrap(0x12, &[7u8; 32]).unwrap());
        assert!(matches!(sha.to_string().parse::<ModelId>(), Err(ModelIdError::Unsupported { hash: 0x12, .. })));
    }
}

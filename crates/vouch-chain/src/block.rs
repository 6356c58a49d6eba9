//! Blocks: a header committing to an ordered list of signed transactions.
//!
//! The block digest is `sha256("VOUCH_BLOCK_V1" ‖ parent ‖ height ‖ timestamp ‖ tx_root)`, where `tx_root` is the
//! root of commonware's binary Merkle tree over `sha256(tx bytes)`. A receipt's anchor therefore proves that its
//! settling transaction is in a finalized block with a header and a Merkle path, without the whole block.

use bytes::{BufMut, Bytes};
use commonware_codec::{
    Buf, Decode as _, EncodeSize, Error as CodecError, RangeCfg, Read, ReadExt, Write, varint::UInt,
};
use commonware_consensus::types::Height;
use commonware_cryptography::{Digestible, Hasher, Sha256, sha256};
use commonware_storage::bmt;
use vouch_codec::{Canonical, DecodeError, Reader, Writer};

/// Domain tag of block digests.
const BLOCK_DOMAIN: &[u8] = b"VOUCH_BLOCK_V1";

/// Most transactions in one block.
pub const MAX_BLOCK_TXS: usize = 4_096;

/// Largest encoded block the codec accepts (and the p2p layer must carry).
pub const MAX_BLOCK_BYTES: usize = MAX_BLOCK_TXS * (vouch_codec::tx::MAX_TX_BYTES + 8) + 256;

/// The part of a block its digest commits to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Digest of the parent block.
    pub parent: [u8; 32],
    /// Height (genesis is 0).
    pub height: u64,
    /// Proposer's clock, milliseconds since the Unix epoch; never below the parent's.
    pub timestamp_ms: u64,
    /// Merkle root of the transaction digests.
    pub tx_root: [u8; 32],
}

impl Header {
    /// The block digest.
    pub fn digest(&self) -> [u8; 32] {
        let d = Sha256::hash(&[
            BLOCK_DOMAIN,
            &self.parent,
            &self.height.to_be_bytes(),
            &self.timestamp_ms.to_be_bytes(),
            &self.tx_root,
        ]);
        digest_bytes(&d)
    }

    /// Fixed 80-byte encoding (parent, height, timestamp, tx root).
    pub fn to_bytes(&self) -> [u8; 80] {
        let mut out = [0u8; 80];
        out[..32].copy_from_slice(&self.parent);
        out[32..40].copy_from_slice(&self.height.to_be_bytes());
        out[40..48].copy_from_slice(&self.timestamp_ms.to_be_bytes());
        out[48..].copy_from_slice(&self.tx_root);
        out
    }

    /// Inverse of [`Header::to_bytes`].
    pub fn from_bytes(b: &[u8; 80]) -> Self {
        let arr = |r: std::ops::Range<usize>| -> [u8; 32] { b[r].try_into().expect("32 bytes") };
        let u = |r: std::ops::Range<usize>| -> u64 { u64::from_be_bytes(b[r].try_into().expect("8 bytes")) };
        Self { parent: arr(0..32), height: u(32..40), timestamp_ms: u(40..48), tx_root: arr(48..80) }
    }
}

/// A block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    header: Header,
    txs: Vec<Bytes>,
}

/// Copies a commonware sha256 digest into an array.
pub fn digest_bytes(d: &sha256::Digest) -> [u8; 32] {
    d.as_ref().try_into().expect("sha256 digests are 32 bytes")
}

/// The leaf committed for one transaction.
pub fn tx_leaf(tx: &[u8]) -> sha256::Digest {
    Sha256::hash(&[tx])
}

fn tx_tree(txs: &[Bytes]) -> bmt::Tree<sha256::Digest> {
    let mut b = bmt::Builder::<Sha256>::new(txs.len());
    for tx in txs {
        b.add(&tx_leaf(tx));
    }
    b.build()
}

impl Block {
    /// Builds a block; computes its transaction root.
    pub fn new(parent: [u8; 32], height: u64, timestamp_ms: u64, txs: Vec<Bytes>) -> Self {
        let tx_root = digest_bytes(&tx_tree(&txs).root());
        Self { header: Header { parent, height, timestamp_ms, tx_root }, txs }
    }

    /// The genesis block of a chain: height 0, its parent is the chain id.
    pub fn genesis(chain_id: [u8; 32]) -> Self {
        Self::new(chain_id, 0, 0, vec![])
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The transactions, in execution order.
    pub fn txs(&self) -> &[Bytes] {
        &self.txs
    }

    /// The Merkle path of transaction `index`, to check against the header's `tx_root`.
    pub fn inclusion_proof(&self, index: u32) -> Option<Vec<u8>> {
        let proof = tx_tree(&self.txs).proof(index).ok()?;
        Some(commonware_codec::Encode::encode(&proof).to_vec())
    }
}

/// Why a transaction is not shown to be in a block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InclusionError {
    /// The Merkle path does not decode.
    #[error("bad Merkle path: {0}")]
    BadPath(String),
    /// The path does not lead from the transaction to the root.
    #[error("{0}")]
    NotIncluded(String),
}

/// Checks that `tx` is transaction `index` under `tx_root`, given the encoded Merkle path.
pub fn verify_inclusion(tx: &[u8], index: u32, tx_root: &[u8; 32], proof: &[u8]) -> Result<(), InclusionError> {
    let proof = bmt::Proof::<sha256::Digest>::decode_cfg(Bytes::copy_from_slice(proof), &1)
        .map_err(|e| InclusionError::BadPath(e.to_string()))?;
    let root = sha256::Digest::from(*tx_root);
    proof
        .verify_element_inclusion::<Sha256>(&tx_leaf(tx), index, &root)
        .map_err(|e| InclusionError::NotIncluded(e.to_string()))
}

impl Write for Block {
    fn write(&self, w: &mut impl BufMut) {
        w.put_slice(&self.header.parent);
        UInt(self.header.height).write(w);
        UInt(self.header.timestamp_ms).write(w);
        self.txs.write(w);
    }
}

impl EncodeSize for Block {
    fn encode_size(&self) -> usize {
        32 + UInt(self.header.height).encode_size()
            + UInt(self.header.timestamp_ms).encode_size()
            + self.txs.encode_size()
    }
}

/// A header's 80 bytes: parent, height and timestamp (big-endian, as the digest hashes them), transaction root.
impl Canonical for Header {
    const WHAT: &'static str = "block header";

    fn encode(&self, w: &mut Writer) {
        w.raw(&self.to_bytes());
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self::from_bytes(&r.array::<80>("block header")?))
    }
}

/// A block's bytes are its commonware-codec encoding (what consensus and marshal carry and archive): parent,
/// varint height and timestamp, the length-prefixed transactions. It is never embedded in another encoding, so it
/// takes the rest of the reader.
impl Canonical for Block {
    const WHAT: &'static str = "block";

    fn encode(&self, w: &mut Writer) {
        w.raw(&commonware_codec::Encode::encode(self));
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let bytes = r.take(r.remaining(), "block")?;
        <Block as commonware_codec::Decode>::decode_cfg(Bytes::copy_from_slice(bytes), &())
            .map_err(|e| DecodeError::NonCanonical { what: "block", reason: e.to_string() })
    }
}

impl Read for Block {
    type Cfg = ();

    fn read_cfg(r: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let parent = <[u8; 32]>::read(r)?;
        let height: u64 = UInt::read(r)?.into();
        let timestamp_ms: u64 = UInt::read(r)?.into();
        let cfg: (RangeCfg<usize>, RangeCfg<usize>) =
            ((..=MAX_BLOCK_TXS).into(), (..=vouch_codec::tx::MAX_TX_BYTES).into());
        let txs = Vec::<Bytes>::read_cfg(r, &cfg)?;
        Ok(Self::new(parent, height, timestamp_ms, txs))
    }
}

impl Digestible for Block {
    type Digest = sha256::Digest;

    fn digest(&self) -> sha256::Digest {
        sha256::Digest::from(self.header.digest())
    }
}

impl commonware_consensus::Heightable for Block {
    fn height(&self) -> Height {
        Height::new(self.header.height)
    }
}

impl commonware_consensus::Block for Block {
    fn parent(&self) -> sha256::Digest {
        sha256::Digest::from(self.header.parent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_codec::{DecodeExt, Encode};

    fn cw_encode(b: &Block) -> bytes::Bytes {
        Encode::encode(b)
    }

    fn cw_decode(b: bytes::Bytes) -> Result<Block, CodecError> {
        <Block as DecodeExt<()>>::decode(b)
    }

    #[test]
    fn round_trip_and_inclusion() {
        let txs: Vec<Bytes> = (0..5u8).map(|i| Bytes::from(vec![i; 10 + i as usize])).collect();
        let b = Block::new([7; 32], 3, 1_000, txs.clone());
        let enc = cw_encode(&b);
        let back = cw_decode(enc.clone()).unwrap();
        assert_eq!(back, b);
        assert_eq!(cw_encode(&back), enc);
        // The canonical bytes are the commonware encoding.
        assert_eq!(b.to_canonical(), enc.to_vec());
        assert_eq!(Block::from_canonical(&enc).unwrap(), b);
        assert_eq!(Header::from_bytes(&b.header().to_bytes()), *b.header());
        for i in 0..5u32 {
            let p = b.inclusion_proof(i).unwrap();
            verify_inclusion(&txs[i as usize], i, &b.header().tx_root, &p).unwrap();
            // Another index, another transaction or another root is rejected.
            assert!(verify_inclusion(&txs[i as usize], (i + 1) % 5, &b.header().tx_root, &p).is_err());
            assert!(verify_inclusion(b"forged", i, &b.header().tx_root, &p).is_err());
            assert!(verify_inclusion(&txs[i as usize], i, &[0; 32], &p).is_err());
        }
        assert!(b.inclusion_proof(5).is_none());
    }

    #[test]
    fn digest_covers_every_header_field() {
        let b = Block::new([1; 32], 1, 5, vec![Bytes::from_static(b"tx")]);
        let d = b.header().digest();
        assert_ne!(Block::new([2; 32], 1, 5, b.txs().to_vec()).header().digest(), d);
        assert_ne!(Block::new([1; 32], 2, 5, b.txs().to_vec()).header().digest(), d);
        assert_ne!(Block::new([1; 32], 1, 6, b.txs().to_vec()).header().digest(), d);
        assert_ne!(Block::new([1; 32], 1, 5, vec![Bytes::from_static(b"tX")]).header().digest(), d);
    }

    #[test]
    fn rejects_oversized_and_trailing_input() {
        let b = Block::new([1; 32], 1, 5, vec![Bytes::from(vec![0u8; vouch_codec::tx::MAX_TX_BYTES + 1])]);
        assert!(cw_decode(cw_encode(&b)).is_err());
        let mut enc = cw_encode(&Block::new([1; 32], 1, 5, vec![])).to_vec();
        enc.push(0);
        assert!(cw_decode(Bytes::from(enc.clone())).is_err());
        assert!(Block::from_canonical(&enc).is_err());
    }
}

//! Receipt anchors: where a receipt's settling transaction sits in the finalized chain, with everything needed to
//! check that offline against the chain spec's validator set (headers, Merkle path, finalization certificate).

use bytes::Bytes;
use commonware_codec::{Decode as _, Encode as _};
use commonware_consensus::simplex::types::Finalization;
use commonware_consensus::types::Height;
use commonware_cryptography::certificate::Verifier as _;
use commonware_cryptography::{ed25519, sha256};
use commonware_parallel::Sequential;
use vouch_codec::tx::{SignedTx, TxKind};
use vouch_codec::{Anchor, BatchPath, Digest, ReceiptBody};

use crate::app::Scheme;
use crate::block::Block;
use crate::block::{Header, verify_inclusion};
use crate::chain::ChainHandle;
use crate::epoch::ValidatorSets;
use crate::validator::NAMESPACE;
use commonware_consensus::marshal::{core::Mailbox, standard::Standard};

/// Why an anchor does not prove settlement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    /// The anchor is for another chain.
    #[error("anchor is for chain {found}, expected {expected}")]
    WrongChain {
        /// The spec's chain id.
        expected: String,
        /// The anchor's.
        found: String,
    },
    /// Headers are missing or not 80-byte records.
    #[error("malformed anchor headers")]
    MalformedHeaders,
    /// The first header is not the named block.
    #[error("anchor header does not hash to the anchored block")]
    BlockMismatch,
    /// The headers do not form a chain.
    #[error("anchor headers do not chain (at height {0})")]
    BrokenHeaderChain(u64),
    /// The Merkle path does not place the transaction in the block.
    #[error("settling transaction is not in the anchored block: {0}")]
    NotIncluded(crate::block::InclusionError),
    /// The settling transaction is malformed, unsigned or not a settlement of this receipt by its executor.
    #[error("settling transaction: {0}")]
    BadSettlement(String),
    /// The settling transaction is a batch and the anchor has no path into it.
    #[error("the settling transaction is a batch and the anchor carries no batch path")]
    MissingBatchPath,
    /// The anchor carries a batch path but the settling transaction settles a single receipt.
    #[error("the anchor carries a batch path but the settling transaction is not a batch")]
    UnexpectedBatchPath,
    /// The batch path does not place the receipt in the settled batch.
    #[error("receipt is not in the settled batch: {0}")]
    NotInBatch(crate::batch::PathError),
    /// The certificate does not decode.
    #[error("malformed finalization certificate: {0}")]
    MalformedCertificate(String),
    /// The certificate is not for the last header.
    #[error("finalization certificate is for another block")]
    CertificateMismatch,
    /// The certificate's signatures do not verify against the validator set.
    #[error("finalization certificate does not verify against the validator set")]
    BadCertificate,
    /// The certificate is of another epoch than its block's height.
    #[error("finalization certificate is of epoch {found}, the block is in epoch {expected}")]
    WrongEpoch {
        /// The epoch of the certified block's height.
        expected: u64,
        /// The certificate's.
        found: u64,
    },
    /// The verifier does not know the validator set of the anchor's epoch.
    #[error(
        "the anchor is certified in epoch {0}, whose validator set is not known here (pass the chain's epoch links: \
         `vouch ledger epochs`)"
    )]
    UnknownEpoch(u64),
}

/// Checks `anchor` for the receipt `body` against the chain id and validator set of a chain spec whose set is fixed.
pub fn verify(
    anchor: &Anchor,
    body: &ReceiptBody,
    chain_id: &[u8; 32],
    validators: &[ed25519::PublicKey],
) -> Result<(), AnchorError> {
    verify_with_sets(anchor, body, chain_id, &ValidatorSets::fixed(validators))
}

/// Checks `anchor` for the receipt `body` against the chain id and the validator set of the epoch its certificate
/// is in.
pub fn verify_with_sets(
    anchor: &Anchor,
    body: &ReceiptBody,
    chain_id: &[u8; 32],
    sets: &ValidatorSets,
) -> Result<(), AnchorError> {
    if anchor.chain != *chain_id {
        return Err(AnchorError::WrongChain { expected: hex::encode(chain_id), found: hex::encode(anchor.chain) });
    }
    if anchor.headers.is_empty() || !anchor.headers.len().is_multiple_of(80) || anchor.headers.len() > 80 * 1024 {
        return Err(AnchorError::MalformedHeaders);
    }
    let headers: Vec<Header> =
        anchor.headers.chunks_exact(80).map(|c| Header::from_bytes(c.try_into().expect("80 bytes"))).collect();
    let first = headers[0];
    if first.digest() != anchor.block_hash || first.height != anchor.height {
        return Err(AnchorError::BlockMismatch);
    }
    for pair in headers.windows(2) {
        if pair[1].parent != pair[0].digest() || pair[1].height != pair[0].height + 1 {
            return Err(AnchorError::BrokenHeaderChain(pair[1].height));
        }
    }
    verify_inclusion(&anchor.tx, anchor.tx_index, &first.tx_root, &anchor.inclusion)
        .map_err(AnchorError::NotIncluded)?;
    let stx = SignedTx::from_bytes(&anchor.tx).map_err(|e| AnchorError::BadSettlement(e.to_string()))?;
    vouch_ledger::check_stateless(chain_id, &stx).map_err(|e| AnchorError::BadSettlement(e.to_string()))?;
    let batch = match stx.tx.kind {
        TxKind::SettleReceipt { receipt } if receipt == body.id() => None,
        TxKind::SettleBatch { root, count } => Some((root, count)),
        _ => return Err(AnchorError::BadSettlement("not a settlement of this receipt".into())),
    };
    if !body.executors.contains(&stx.tx.from) {
        return Err(AnchorError::BadSettlement("not sent by the receipt's executor".into()));
    }
    match (batch, &anchor.batch) {
        (None, None) => {}
        (None, Some(_)) => return Err(AnchorError::UnexpectedBatchPath),
        (Some(_), None) => return Err(AnchorError::MissingBatchPath),
        (Some((root, count)), Some(p)) => {
            crate::batch::verify_path(&body.id(), &stx.tx.from, p.index, &p.path, &root, count)
                .map_err(AnchorError::NotInBatch)?;
        }
    }
    let last = headers.last().expect("non-empty");
    let epoch = sets.epoch_of(last.height);
    let set = sets.get(epoch).ok_or(AnchorError::UnknownEpoch(epoch))?;
    let verifier = Scheme::verifier(NAMESPACE, set);
    let fin = Finalization::<Scheme, sha256::Digest>::decode_cfg(
        Bytes::copy_from_slice(&anchor.certificate),
        &verifier.certificate_codec_config(),
    )
    .map_err(|e| AnchorError::MalformedCertificate(e.to_string()))?;
    if fin.proposal.payload != sha256::Digest::from(last.digest()) {
        return Err(AnchorError::CertificateMismatch);
    }
    let found = fin.proposal.round.epoch().get();
    if found != epoch {
        return Err(AnchorError::WrongEpoch { expected: epoch, found });
    }
    if !fin.verify(&mut commonware_utils::sys_rng(), &verifier, &Sequential) {
        return Err(AnchorError::BadCertificate);
    }
    Ok(())
}

/// Builds the anchor of a receipt settled on its own (`SettleReceipt`), if its settlement is finalized and a
/// certificate is available.
pub async fn build(
    chain: &ChainHandle,
    marshal: &Mailbox<Scheme, Standard<Block>>,
    receipt: &Digest,
) -> Option<Anchor> {
    let height = chain.state().ledger.receipts.get(receipt)?.1;
    build_at(chain, marshal, height, |k| matches!(k, TxKind::SettleReceipt { receipt: r } if r == receipt), None).await
}

/// Builds the anchor of a receipt settled in the batch with `root`, at its place `path` (which the caller got from
/// the batch's members; [`verify`] checks it), if the batch's settlement is finalized and a certificate is available.
/// `height` is where the batch was settled, for a batch the state no longer holds (pruned after the retention);
/// `None`: as the state records it.
pub async fn build_batched(
    chain: &ChainHandle,
    marshal: &Mailbox<Scheme, Standard<Block>>,
    root: &Digest,
    height: Option<u64>,
    path: BatchPath,
) -> Option<Anchor> {
    let height = match height {
        Some(h) => h,
        None => chain.state().ledger.batches.get(root)?.1,
    };
    build_at(chain, marshal, height, |k| matches!(k, TxKind::SettleBatch { root: r, .. } if r == root), Some(path))
        .await
}

async fn build_at(
    chain: &ChainHandle,
    marshal: &Mailbox<Scheme, Standard<Block>>,
    height: u64,
    settles: impl Fn(&TxKind) -> bool,
    batch: Option<BatchPath>,
) -> Option<Anchor> {
    let tip = chain.state().height;
    let block = marshal.get_block(Height::new(height)).await?;
    let (index, tx) = block
        .inner()
        .txs()
        .iter()
        .enumerate()
        .find(|(_, b)| SignedTx::from_bytes(b).is_ok_and(|s| settles(&s.tx.kind)))?;
    let inclusion = block.inner().inclusion_proof(index as u32)?;
    // The block's own certificate, or (if it was finalized implicitly as an ancestor) the next one above it, with the
    // headers in between (read from marshal's archive, so this works for receipts settled long ago too).
    let mut headers = vec![*block.inner().header()];
    for h in height..=tip {
        if h > height {
            headers.push(*marshal.get_block(Height::new(h)).await?.inner().header());
        }
        if let Some(fin) = marshal.get_finalization(Height::new(h)).await {
            return Some(Anchor {
                chain: chain.chain_id(),
                height,
                block_hash: block.inner().header().digest(),
                tx_index: index as u32,
                tx: tx.to_vec(),
                inclusion,
                headers: headers.iter().flat_map(|hd| hd.to_bytes()).collect(),
                certificate: fin.encode().to_vec(),
                batch,
            });
        }
    }
    None
}

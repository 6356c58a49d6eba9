//! The consensus application: builds blocks from the mempool and checks peers' blocks before voting.

use std::time::UNIX_EPOCH;

use bytes::Bytes;
use commonware_consensus::marshal::ancestry::Ancestry;
use commonware_consensus::simplex::types::Context;
use commonware_consensus::{Application, Heightable};
use commonware_cryptography::{Digested, ed25519, sha256};
use commonware_runtime::Clock;
use futures::StreamExt;
use tracing::warn;

use crate::block::{Block, MAX_BLOCK_TXS};
use crate::chain::{ChainHandle, check_block_txs, check_epoch_change, expected_epoch_change};

/// How long a proposer with an empty mempool polls for transactions before proposing an empty block (keeps an idle
/// chain at a few blocks per second, far below the leader timeout).
const EMPTY_BLOCK_POLL: std::time::Duration = std::time::Duration::from_millis(50);
const EMPTY_BLOCK_POLLS: usize = 6;

/// The ed25519 simplex signing scheme.
pub type Scheme = commonware_consensus::simplex::scheme::ed25519::Scheme;

/// The application one validator runs.
#[derive(Clone)]
pub struct App {
    chain: ChainHandle,
    max_txs: usize,
}

impl App {
    /// An application over `chain` that puts at most `max_txs` transactions in a block.
    pub fn new(chain: ChainHandle, max_txs: usize) -> Self {
        Self { chain, max_txs: max_txs.clamp(2, MAX_BLOCK_TXS) }
    }
}

fn now_ms(clock: &impl Clock) -> u64 {
    clock.current().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl<E: Clock + Send + Sync + 'static> Application<E> for App {
    type SigningScheme = Scheme;
    type Context = Context<sha256::Digest, ed25519::PublicKey>;
    type Block = Block;
    type Input = ();

    async fn propose(
        &mut self,
        (clock, _): (E, Self::Context),
        mut ancestry: impl Ancestry<Block>,
        _: (),
    ) -> Option<Digested<Block>> {
        let parent = ancestry.next().await?;
        let executed = self.chain.state().height;
        // Transactions already in notarized ancestors that are not executed yet must not be proposed again.
        let mut pending = vec![];
        let mut cursor = Some(parent.clone());
        while let Some(b) = cursor {
            if b.height().get() <= executed {
                break;
            }
            match check_block_txs(&self.chain, b.inner()) {
                Ok(txs) => pending.extend(txs),
                Err(e) => warn!(error = %e, "ancestor holds invalid transactions"),
            }
            cursor = ancestry.next().await;
        }
        pending.reverse();
        // An idle chain does not spin: wait (briefly) for transactions before proposing an empty block.
        let p = parent.inner().header();
        let height = p.height + 1;
        // The last block of an epoch ends with the next epoch's set (and so holds one transaction fewer).
        let change = match self.chain.genesis().params.validators.is_boundary(height) {
            true => match expected_epoch_change(&self.chain, height) {
                Some(c) => Some(Bytes::from(vouch_codec::Canonical::to_canonical(&c))),
                None => {
                    warn!(height, "the next epoch's set is not known here yet; not proposing");
                    return None;
                }
            },
            false => None,
        };
        let max = self.max_txs - usize::from(change.is_some());
        let mut txs = self.chain.select(&pending, max);
        for _ in 0..EMPTY_BLOCK_POLLS {
            if !txs.is_empty() || change.is_some() {
                break;
            }
            clock.sleep(EMPTY_BLOCK_POLL).await;
            txs = self.chain.select(&pending, max);
        }
        txs.extend(change);
        let ts = now_ms(&clock).max(p.timestamp_ms);
        let block = Block::new(p.digest(), height, ts, txs);
        let digest = commonware_cryptography::Digestible::digest(&block);
        Some(Digested::precomputed(block, digest))
    }

    async fn verify(&mut self, _: (E, Self::Context), mut ancestry: impl Ancestry<Block>) -> bool {
        let Some(block) = ancestry.next().await else { return false };
        let Some(parent) = ancestry.next().await else { return false };
        if block.inner().header().timestamp_ms < parent.inner().header().timestamp_ms {
            warn!(height = block.height().get(), "block timestamp goes backwards");
            return false;
        }
        match check_block_txs(&self.chain, block.inner()).and_then(|_| check_epoch_change(&self.chain, block.inner())) {
            Ok(_) => true,
            Err(e) => {
                warn!(height = block.height().get(), error = %e, "rejecting block");
                false
            }
        }
    }
}

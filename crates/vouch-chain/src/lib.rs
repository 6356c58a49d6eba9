//! Vouch's replicated ledger: the [`vouch_ledger`] state machine replicated by commonware's simplex BFT consensus.
//!
//! Blocks ([`block`]) carry signed transactions; validators check them before voting ([`app`]); marshal
//! disseminates blocks, archives finalized blocks with their certificates and backfills peers that fell behind;
//! the executor applies finalized blocks in height order ([`chain`]). [`validator::start`] wires one validator for
//! any commonware runtime and p2p network.

pub mod anchor;
pub mod app;
pub mod batch;
pub mod block;
pub mod chain;
pub mod epoch;
pub mod index;
pub mod mempool;
pub mod net;
mod orchestrator;
pub mod record;
mod sigcache;
pub mod snapshot;
pub mod spec;
pub mod statesync;
pub mod store;
pub mod validator;

pub use block::{Block, Header};
pub use chain::{Chain, ChainHandle, ChainState, SubmitError};
pub use record::TxRecord;

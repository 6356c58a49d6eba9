//! The ledger's deterministic state machine: accounts, nodes and stake, models, jobs, results, disputes and slashing.
//!
//! [`State::apply`] takes one signed transaction in a block context (height and a finalized seed) and either
//! applies it whole or rejects it with a [`TxError`] leaving the state untouched: every check runs before
//! the first write. The state is ordered maps only, so replaying the same transactions from the same genesis
//! gives the same [`State::root`] on every node. Replication (consensus, p2p, storage) wraps this crate; it
//! has no I/O, clock or randomness of its own.

//!
//! Layout: `types.rs` (parameters, genesis, records, events), `error.rs` ([`TxError`]), `state.rs` ([`State`] and
//! the checks every transaction passes), `tx/` (one file per transaction family: accounts, staking, models,
//! receipts, jobs and disputes), `entries.rs` (canonical table entries and the state root), `snapshot.rs` (the
//! state's byte encoding), `assign.rs` (stake-weighted executor selection), `table.rs` (change-tracking maps), `spill.rs` (change-tracking maps whose entries live on disk).

mod assign;
mod entries;
mod error;
mod snapshot;
mod spill;
mod state;
mod table;
mod tx;
mod types;

pub use assign::select_executors;
pub use error::TxError;
pub use spill::{Backing, Codec, Spill, Write};
pub use state::{Signature, State, check_stateless};
pub use table::{LtHash, Table};
pub use types::{
    Account, BlockCtx, DEFAULT_RETENTION_BLOCKS, Event, Genesis, Job, JobStatus, ModelRecord, NodeRecord, PRUNE_EVERY,
    Params, ValidatorParams, ValidatorRecord,
};

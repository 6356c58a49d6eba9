//! The ledger's deterministic state machine: accounts, nodes and stake, models, jobs, results, disputes and slashing.
//!
//! [`State::apply`] takes one signed transaction in a block context (height and a finalized seed) and either
//! applies it whole or rejects it with a [`TxError`] leaving the state untouched: every check runs before
//! the first write. The state is ordered maps only, so replaying the same transactions from the same genesis
//! gives the same [`State::root`] on every node. Replication (consensus, p2p, storage) wraps this crate; it
//! has no I/O, clock or randomness of its own.

mod assign;
mod snapshot;
mod state;
mod table;

pub use assign::select_executors;
pub use state::{
    Account, BlockCtx, Event, Genesis, Job, JobStatus, ModelRecord, NodeRecord, Params, Signature, State, TxError,
    check_stateless,
};
pub use table::{LtHash, Table};

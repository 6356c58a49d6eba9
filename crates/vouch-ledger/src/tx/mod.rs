//! One file per transaction family: each handler validates everything before its first write, so a rejected
//! transaction leaves the state unchanged (the fee and nonce of an admissible one are handled by `State::execute`).

mod accounts;
mod jobs;
mod models;
mod receipts;
mod staking;
mod tee;
mod validators;

//! The chain specification file (`genesis.json`): funded accounts, parameters and the validator set with their
//! p2p and API addresses. Its ledger part hashes to the chain id every transaction and anchor commits to.

use std::net::SocketAddr;

use commonware_codec::DecodeExt as _;
use commonware_cryptography::{Signer as _, ed25519};
use serde::{Deserialize, Serialize};
use vouch_ledger::{Genesis, Params};

/// A funded account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSpec {
    /// Address (hex ed25519 public key).
    pub address: String,
    /// Initial balance.
    pub balance: u64,
}

/// A validator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorSpec {
    /// Consensus public key (hex ed25519).
    pub consensus_key: String,
    /// Node identity (hex ed25519): signs receipts and settlement transactions.
    pub node_id: String,
    /// p2p address.
    pub p2p: SocketAddr,
    /// HTTP API base URL.
    pub api: String,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSpec {
    /// Funded accounts.
    pub accounts: Vec<AccountSpec>,
    /// Parameters.
    #[serde(default)]
    pub params: Params,
    /// Validators.
    pub validators: Vec<ValidatorSpec>,
}

/// Why a chain spec is refused.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a chain spec.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// No validators.
    #[error("the chain spec lists no validators")]
    NoValidators,
    /// A parameter is out of range.
    #[error("params: {0}")]
    BadParams(String),
    /// A key or address is not 32 bytes of hex, or not a valid public key.
    #[error("{what} {value:?}: {reason}")]
    BadKey {
        /// Which field.
        what: &'static str,
        /// Its value.
        value: String,
        /// Why.
        reason: String,
    },
}

fn hex32(what: &'static str, s: &str) -> Result<[u8; 32], SpecError> {
    let bad = |reason: String| SpecError::BadKey { what, value: s.to_owned(), reason };
    let v = hex::decode(s).map_err(|e| bad(e.to_string()))?;
    v.try_into().map_err(|_| bad("not 32 bytes".into()))
}

/// Context of the consensus key derived from a node key (`NodeKey::derive_seed`): a separate key, so consensus and
/// receipt signatures can never be confused.
pub const CONSENSUS_KEY_CONTEXT: &str = "VOUCH_CONSENSUS_KEY_V1";

/// The consensus key of a derived seed.
pub fn consensus_key(seed: &[u8; 32]) -> ed25519::PrivateKey {
    ed25519::PrivateKey::decode(bytes::Bytes::copy_from_slice(seed)).expect("any 32 bytes are an ed25519 secret")
}

/// The public consensus key of a derived seed, hex.
pub fn consensus_public_hex(seed: &[u8; 32]) -> String {
    hex::encode(consensus_key(seed).public_key().as_ref())
}

impl ChainSpec {
    /// Reads and checks a spec file.
    pub fn load(path: &std::path::Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Io { path: path.to_owned(), source })?;
        let spec: Self =
            serde_json::from_str(&text).map_err(|source| SpecError::Json { path: path.to_owned(), source })?;
        spec.genesis()?;
        Ok(spec)
    }

    /// The ledger genesis.
    pub fn genesis(&self) -> Result<Genesis, SpecError> {
        if self.validators.is_empty() {
            return Err(SpecError::NoValidators);
        }
        let v = &self.params.validators;
        if v.epoch_length == 1 {
            return Err(SpecError::BadParams("validators.epoch_length must be 0 (a fixed set) or at least 2".into()));
        }
        if v.epochs() && (v.max_validators == 0 || v.max_validators as usize > crate::epoch::MAX_SET) {
            return Err(SpecError::BadParams(format!(
                "validators.max_validators must be between 1 and {}",
                crate::epoch::MAX_SET
            )));
        }
        let accounts = self
            .accounts
            .iter()
            .map(|a| Ok((hex32("account", &a.address)?, a.balance)))
            .collect::<Result<Vec<_>, SpecError>>()?;
        let validators = self
            .validators
            .iter()
            .map(|v| {
                hex32("node id", &v.node_id)?;
                hex32("consensus key", &v.consensus_key)
            })
            .collect::<Result<Vec<_>, SpecError>>()?;
        Ok(Genesis { accounts, params: self.params.clone(), validators })
    }

    /// The validators' consensus keys as commonware keys.
    pub fn validator_keys(&self) -> Result<Vec<ed25519::PublicKey>, SpecError> {
        self.validators
            .iter()
            .map(|v| {
                let b = hex32("consensus key", &v.consensus_key)?;
                ed25519::PublicKey::decode(bytes::Bytes::copy_from_slice(&b)).map_err(|e| SpecError::BadKey {
                    what: "consensus key",
                    value: v.consensus_key.clone(),
                    reason: e.to_string(),
                })
            })
            .collect()
    }
}

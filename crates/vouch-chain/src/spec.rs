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

fn hex32(what: &str, s: &str) -> Result<[u8; 32], String> {
    let v = hex::decode(s).map_err(|e| format!("{what} {s:?}: {e}"))?;
    v.try_into().map_err(|_| format!("{what} {s:?}: not 32 bytes"))
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
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let spec: Self = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        spec.genesis()?;
        Ok(spec)
    }

    /// The ledger genesis.
    pub fn genesis(&self) -> Result<Genesis, String> {
        if self.validators.is_empty() {
            return Err("the chain spec lists no validators".into());
        }
        let accounts = self
            .accounts
            .iter()
            .map(|a| Ok((hex32("account", &a.address)?, a.balance)))
            .collect::<Result<Vec<_>, String>>()?;
        let validators = self
            .validators
            .iter()
            .map(|v| {
                hex32("node id", &v.node_id)?;
                hex32("consensus key", &v.consensus_key)
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Genesis { accounts, params: self.params.clone(), validators })
    }

    /// The validators' consensus keys as commonware keys.
    pub fn validator_keys(&self) -> Result<Vec<ed25519::PublicKey>, String> {
        self.validators
            .iter()
            .map(|v| {
                let b = hex32("consensus key", &v.consensus_key)?;
                ed25519::PublicKey::decode(bytes::Bytes::copy_from_slice(&b))
                    .map_err(|e| format!("consensus key {}: {e}", v.consensus_key))
            })
            .collect()
    }
}

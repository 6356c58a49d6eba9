//! Staking: executor registration (with proof of possession of the node key), more stake, unbonding and its
//! release after `unbonding_blocks`.

use vouch_codec::domain;
use vouch_codec::tx::{Address, MAX_ENGINE_LEN};

use crate::error::TxError;
use crate::state::{State, TxCtx, short};
use crate::types::{Event, NodeRecord};

impl State {
    /// `RegisterNode`: a new executor with at least the minimum stake, operated by the sender.
    pub(crate) fn register_node(
        &mut self,
        c: &TxCtx<'_>,
        node: &Address,
        endpoint: &str,
        stake: u64,
        node_signature: &[u8; 64],
    ) -> Result<Vec<Event>, TxError> {
        if self.nodes.contains_key(node) {
            return Err(TxError::NodeExists(short(node)));
        }
        if endpoint.len() > self.params.max_endpoint_len {
            return Err(TxError::TooLong { what: "endpoint", len: endpoint.len(), max: self.params.max_endpoint_len });
        }
        if stake < self.params.min_stake {
            return Err(TxError::StakeTooLow { stake, min: self.params.min_stake });
        }
        vouch_crypto::verify(domain::NODE_BIND, node, &c.tx.from, node_signature)
            .map_err(|_| TxError::BadNodeSignature)?;
        let needed = c.spend(stake)?;
        self.charge(c.tx.from, needed, c.tx.fee);
        self.nodes.insert(
            *node,
            NodeRecord {
                operator: c.tx.from,
                endpoint: endpoint.to_owned(),
                engine: String::new(),
                stake,
                slashed: 0,
                unbonding: vec![],
                attestation: None,
            },
        );
        Ok(vec![])
    }

    /// `SetEngine`: the engine string of a node, declared by its operator or by the node key itself.
    pub(crate) fn set_engine(&mut self, c: &TxCtx<'_>, node: &Address, engine: &str) -> Result<Vec<Event>, TxError> {
        let n = self.nodes.get(node).ok_or_else(|| TxError::UnknownNode(short(node)))?;
        if n.operator != c.tx.from && *node != c.tx.from {
            return Err(TxError::NotOperator(short(node)));
        }
        if engine.len() > MAX_ENGINE_LEN {
            return Err(TxError::TooLong { what: "engine", len: engine.len(), max: MAX_ENGINE_LEN });
        }
        self.charge(c.tx.from, c.spend(0)?, c.tx.fee);
        self.nodes.get_mut(node).expect("checked").engine = engine.to_owned();
        Ok(vec![])
    }

    /// `AddStake`: more stake for a node the sender operates.
    pub(crate) fn add_stake(&mut self, c: &TxCtx<'_>, node: &Address, amount: u64) -> Result<Vec<Event>, TxError> {
        let n = self.nodes.get(node).ok_or_else(|| TxError::UnknownNode(short(node)))?;
        if n.operator != c.tx.from {
            return Err(TxError::NotOperator(short(node)));
        }
        if amount == 0 || n.stake.checked_add(amount).is_none() {
            return Err(TxError::InvalidAmount);
        }
        let needed = c.spend(amount)?;
        self.charge(c.tx.from, needed, c.tx.fee);
        self.nodes.get_mut(node).expect("checked").stake += amount;
        Ok(vec![])
    }

    /// `Unbond`: stake leaves at once (the node stops being eligible for it) and returns to the operator after
    /// `unbonding_blocks`, slashable until then.
    pub(crate) fn unbond(&mut self, c: &TxCtx<'_>, node: &Address, amount: u64) -> Result<Vec<Event>, TxError> {
        let n = self.nodes.get(node).ok_or_else(|| TxError::UnknownNode(short(node)))?;
        if n.operator != c.tx.from {
            return Err(TxError::NotOperator(short(node)));
        }
        if amount == 0 || amount > n.stake {
            return Err(TxError::InvalidAmount);
        }
        let needed = c.spend(0)?;
        self.charge(c.tx.from, needed, c.tx.fee);
        let release = c.block.height.saturating_add(self.params.unbonding_blocks);
        let n = self.nodes.get_mut(node).expect("checked");
        n.stake -= amount;
        n.unbonding.push((release, amount));
        Ok(vec![Event::Unbonding { node: *node, amount, release_height: release }])
    }

    /// Returns unbonding stake whose release height has come to its operator.
    pub(crate) fn release_unbonded(&mut self, height: u64) -> Vec<Event> {
        let mut events = vec![];
        let due: Vec<Address> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.unbonding.iter().any(|(h, _)| *h <= height))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let n = self.nodes.get_mut(&id).expect("listed");
            let amount: u64 = n.unbonding.iter().filter(|(h, _)| *h <= height).map(|(_, a)| *a).sum();
            n.unbonding.retain(|(h, _)| *h > height);
            let operator = n.operator;
            self.accounts.entry_or_default(operator).balance += amount;
            events.push(Event::Unbonded { node: id, amount });
        }
        events
    }
}

//! Validator bonds (chains with epochs): bonding a consensus key with proof of possession, unbonding it, the return
//! of its stake, and the choice of each epoch's set at the end of the epoch two before it.

use vouch_codec::domain;
use vouch_codec::tx::Address;

use crate::error::TxError;
use crate::state::{State, TxCtx, short};
use crate::types::{Event, ValidatorRecord};

impl State {
    /// `BondValidator`: a new candidate key (proof of possession, a unique `ip:port`), or more stake on one the
    /// sender bonded; the total must reach the minimum validator stake.
    pub(crate) fn bond_validator(
        &mut self,
        c: &TxCtx<'_>,
        key: &Address,
        p2p: &str,
        stake: u64,
        key_signature: &[u8; 64],
    ) -> Result<Vec<Event>, TxError> {
        let params = &self.params.validators;
        if !params.epochs() {
            return Err(TxError::FixedValidatorSet);
        }
        let existing = self.validators.get(key);
        if let Some(v) = existing
            && v.operator != c.tx.from
        {
            return Err(TxError::NotOperator(short(key)));
        }
        if p2p.len() > self.params.max_endpoint_len {
            return Err(TxError::TooLong { what: "p2p address", len: p2p.len(), max: self.params.max_endpoint_len });
        }
        let keep_address = existing.is_some_and(|v| p2p.is_empty() || v.p2p == p2p);
        if !keep_address {
            if p2p.parse::<std::net::SocketAddr>().is_err() {
                return Err(TxError::BadP2pAddress(p2p.to_owned()));
            }
            if self.validators.iter().any(|(k, v)| k != key && v.p2p == p2p) {
                return Err(TxError::P2pAddressInUse(p2p.to_owned()));
            }
        }
        let total = existing.map_or(0, |v| v.stake).checked_add(stake).ok_or(TxError::InvalidAmount)?;
        if stake == 0 {
            return Err(TxError::InvalidAmount);
        }
        if total < params.min_stake {
            return Err(TxError::StakeTooLow { stake: total, min: params.min_stake });
        }
        if existing.is_none() {
            vouch_crypto::verify(domain::VALIDATOR_BIND, key, &c.tx.from, key_signature)
                .map_err(|_| TxError::BadValidatorSignature)?;
        }
        let needed = c.spend(stake)?;
        self.charge(c.tx.from, needed, c.tx.fee);
        if !self.validators.contains_key(key) {
            let fresh = ValidatorRecord { operator: c.tx.from, p2p: String::new(), stake: 0, unbonding: vec![] };
            self.validators.insert(*key, fresh);
        }
        let record = self.validators.get_mut(key).expect("inserted");
        record.stake = total;
        if !keep_address {
            record.p2p = p2p.to_owned();
        }
        Ok(vec![])
    }

    /// `UnbondValidator`: the whole stake leaves at once (the key is no longer a candidate, so it leaves the set at
    /// the epoch after next) and returns `unbonding_blocks` after the first height it can no longer validate.
    pub(crate) fn unbond_validator(&mut self, c: &TxCtx<'_>, key: &Address) -> Result<Vec<Event>, TxError> {
        let params = self.params.validators.clone();
        if !params.epochs() {
            return Err(TxError::FixedValidatorSet);
        }
        let v = self.validators.get(key).ok_or_else(|| TxError::UnknownValidator(short(key)))?;
        if v.operator != c.tx.from {
            return Err(TxError::NotOperator(short(key)));
        }
        if v.stake == 0 {
            return Err(TxError::InvalidAmount);
        }
        let amount = v.stake;
        self.charge(c.tx.from, c.spend(0)?, c.tx.fee);
        // It may already be in the set of the next epoch (fixed), so it validates until the end of that one.
        let epoch = params.epoch_of(c.block.height);
        let release = params.last_height(epoch + 1).saturating_add(1).saturating_add(params.unbonding_blocks);
        let v = self.validators.get_mut(key).expect("checked");
        v.stake = 0;
        v.unbonding.push((release, amount));
        Ok(vec![Event::Unbonding { node: *key, amount, release_height: release }])
    }

    /// Returns validator stake whose release height has come; a key with nothing left is forgotten.
    pub(crate) fn release_unbonded_validators(&mut self, height: u64) -> Vec<Event> {
        let due: Vec<Address> = self
            .validators
            .iter()
            .filter(|(_, v)| v.unbonding.iter().any(|(h, _)| *h <= height))
            .map(|(k, _)| *k)
            .collect();
        let mut events = vec![];
        for key in due {
            let v = self.validators.get_mut(&key).expect("listed");
            let amount: u64 = v.unbonding.iter().filter(|(h, _)| *h <= height).map(|(_, a)| *a).sum();
            v.unbonding.retain(|(h, _)| *h > height);
            let (operator, gone) = (v.operator, v.stake == 0 && v.unbonding.is_empty());
            if gone {
                self.validators.remove(&key);
            }
            self.accounts.entry_or_default(operator).balance += amount;
            events.push(Event::Unbonded { node: key, amount });
        }
        events
    }

    /// At the last block of epoch `e`: epoch `e + 1`'s set (fixed an epoch ago) becomes current, and epoch `e + 2`'s
    /// is chosen: the `max_validators` keys with the most stake at least the minimum (ties by key), sorted. When no
    /// key qualifies the set stays as it is, so a mass unbonding cannot leave the chain without validators.
    pub(crate) fn end_epoch(&mut self, height: u64) -> Option<Event> {
        let params = self.params.validators.clone();
        if !params.is_boundary(height) {
            return None;
        }
        let epoch = params.epoch_of(height);
        let mut ranked: Vec<(u64, Address)> =
            self.validators.iter().filter(|(_, v)| v.stake >= params.min_stake).map(|(k, v)| (v.stake, *k)).collect();
        ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        ranked.truncate(params.max_validators as usize);
        let mut set: Vec<Address> = ranked.into_iter().map(|(_, k)| k).collect();
        set.sort_unstable();
        if set.is_empty() {
            set = self.validator_sets.get(&(epoch + 1)).cloned().unwrap_or_default();
        }
        self.validator_sets.remove(&epoch);
        self.validator_sets.insert(epoch + 2, set.clone());
        Some(Event::ValidatorSetChosen { epoch: epoch + 2, validators: set })
    }
}

//! Models: registration with their agreement rule.

use vouch_codec::{AgreementRule, ModelId};

use crate::error::TxError;
use crate::state::{State, TxCtx};
use crate::types::{Event, ModelRecord};

impl State {
    /// `RegisterModel`: a model id, owned by the sender, with its `name@version`, zk commitment and agreement rule.
    pub(crate) fn register_model(
        &mut self,
        c: &TxCtx<'_>,
        model: &ModelId,
        name: &str,
        commitment: &[u8],
        rule: &AgreementRule,
    ) -> Result<Vec<Event>, TxError> {
        if self.models.contains_key(model) {
            return Err(TxError::ModelExists(model.to_string()));
        }
        if name.len() > 128 {
            return Err(TxError::TooLong { what: "model name", len: name.len(), max: 128 });
        }
        if commitment.len() > 1024 {
            return Err(TxError::TooLong { what: "commitment", len: commitment.len(), max: 1024 });
        }
        rule.check().map_err(TxError::InvalidRule)?;
        let needed = c.spend(0)?;
        self.charge(c.tx.from, needed, c.tx.fee);
        self.models.insert(
            *model,
            ModelRecord { owner: c.tx.from, name: name.to_owned(), commitment: commitment.to_vec(), rule: *rule },
        );
        Ok(vec![])
    }
}

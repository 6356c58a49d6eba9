//! Validator sets that change at epoch boundaries (chains whose `params.validators.epoch_length` is set).
//!
//! The ledger fixes epoch `e + 1`'s set when the last block of epoch `e − 1` executes. The proposer of the last
//! block of epoch `e` appends it to the block as its final item, an [`EpochChange`], which the block's transaction
//! root commits to like any transaction, and validators refuse a boundary block whose change differs from their
//! ledger's. So a verifier holding only the genesis set can follow every later set through finalized blocks: the
//! boundary block of epoch `e` (header, the change, its Merkle path) under a finalization certificate of set(e)
//! proves set(e + 1) (an [`EpochLink`]).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use commonware_codec::{Decode as _, DecodeExt as _, Encode as _};
use commonware_consensus::simplex::types::Finalization;
use commonware_consensus::types::Epoch;
use commonware_cryptography::certificate::{Provider, Scoped, Verifier as _};
use commonware_cryptography::{ed25519, sha256};
use commonware_parallel::Sequential;
use commonware_utils::ordered::Set;
use vouch_codec::{Canonical, DecodeError, Reader, Writer};
use vouch_ledger::ValidatorParams;

use crate::app::Scheme;
use crate::block::{Block, Header, verify_inclusion};
use crate::validator::NAMESPACE;

/// Magic of an [`EpochChange`]'s bytes (never the start of a signed transaction, `VOUCHTX1`).
const MAGIC: &[u8; 14] = b"VOUCH_EPOCH_V1";

/// Most validators in a set an [`EpochChange`] may carry.
pub const MAX_SET: usize = 1_024;

/// The last item of an epoch's boundary block: the validator set of the next epoch, and the ledger's state root
/// at the start of the ending epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochChange {
    /// The epoch the set validates.
    pub epoch: u64,
    /// The state root after the last block of the epoch before the ending one (for epoch 0, the genesis state's):
    /// every validator of the ending epoch has executed that block, so it checks the root before voting, and the
    /// finalized chain commits to one state root per epoch (what a snapshot from a peer can be checked against).
    pub state_root: [u8; 32],
    /// Its consensus keys, sorted.
    pub validators: Vec<[u8; 32]>,
}

impl EpochChange {
    /// The height whose state root the change of the boundary block of `ending` (an epoch) carries.
    pub fn root_height(params: &ValidatorParams, ending: u64) -> u64 {
        if ending == 0 { 0 } else { params.last_height(ending - 1) }
    }
}

/// `VOUCH_EPOCH_V1`, the epoch, the state root, the count, the sorted keys.
impl Canonical for EpochChange {
    const WHAT: &'static str = "epoch change";

    fn encode(&self, w: &mut Writer) {
        w.raw(MAGIC);
        w.u64(self.epoch);
        w.raw(&self.state_root);
        w.len(self.validators.len());
        self.validators.iter().for_each(|k| w.raw(k));
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if r.take(MAGIC.len(), "epoch change magic")? != MAGIC {
            return Err(DecodeError::NonCanonical { what: "epoch change", reason: "bad magic bytes".into() });
        }
        let epoch = r.u64("epoch")?;
        let state_root = r.array("state root")?;
        let n = r.count("validators")?;
        if n == 0 || n > MAX_SET {
            return Err(DecodeError::InvalidValue { what: "validator count", value: n as u64 });
        }
        let validators = (0..n).map(|_| r.array("validator")).collect::<Result<Vec<[u8; 32]>, _>>()?;
        if !validators.windows(2).all(|w| w[0] < w[1]) {
            return Err(DecodeError::NonCanonical {
                what: "epoch change",
                reason: "keys not sorted and unique".into(),
            });
        }
        Ok(Self { epoch, state_root, validators })
    }
}

/// A block's signed-transaction items and, for a boundary block, its epoch change (always the last item there).
pub fn split<'a>(params: &ValidatorParams, block: &'a Block) -> (&'a [Bytes], Option<&'a Bytes>) {
    let txs = block.txs();
    match txs.split_last() {
        Some((last, rest)) if params.is_boundary(block.header().height) => (rest, Some(last)),
        _ => (txs, None),
    }
}

/// Consensus keys as commonware keys (refusing bytes that are not a valid key).
pub fn keys(set: &[[u8; 32]]) -> Option<Set<ed25519::PublicKey>> {
    let keys: Option<Vec<ed25519::PublicKey>> =
        set.iter().map(|k| ed25519::PublicKey::decode(Bytes::copy_from_slice(k)).ok()).collect();
    Some(Set::from_iter_dedup(keys?))
}

/// The signing schemes of the epochs a validator knows, for marshal (which verifies each finalization with the
/// scheme of its epoch) and the engines: a signer where this validator is in the set, a verifier elsewhere.
#[derive(Clone, Default)]
pub struct EpochSchemes(Arc<RwLock<BTreeMap<u64, Arc<Scheme>>>>);

impl EpochSchemes {
    /// Registers epoch `epoch`'s set; `signer` signs where it is a member.
    pub fn register(&self, epoch: u64, set: Set<ed25519::PublicKey>, signer: &ed25519::PrivateKey) -> Arc<Scheme> {
        let scheme = Arc::new(
            Scheme::signer(NAMESPACE, set.clone(), signer.clone()).unwrap_or_else(|| Scheme::verifier(NAMESPACE, set)),
        );
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        map.insert(epoch, scheme.clone());
        // Marshal needs the epochs it may still have to verify, never more than a few behind the newest.
        while map.len() > 8 {
            let Some(oldest) = map.keys().next().copied() else { break };
            map.remove(&oldest);
        }
        scheme
    }

    /// Whether `epoch` is registered.
    pub fn has(&self, epoch: u64) -> bool {
        self.0.read().unwrap_or_else(|p| p.into_inner()).contains_key(&epoch)
    }
}

impl Provider for EpochSchemes {
    type Scope = Epoch;
    type Scheme = Scheme;

    fn scoped(&self, scope: Epoch) -> Option<Scoped<Scheme>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).get(&scope.get()).cloned().map(Scoped::scheme)
    }

    fn scheme(&self, scope: Epoch) -> Option<Arc<Scheme>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).get(&scope.get()).cloned()
    }
}

/// The proof that a set validates epoch `change.epoch`: the boundary block of the epoch before (its header, the
/// change item and its Merkle path) under a finalization by that epoch's set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochLink {
    /// The boundary block's header.
    pub header: Header,
    /// The change (the block's last item).
    pub change: EpochChange,
    /// Its index in the block.
    pub index: u32,
    /// Its Merkle path to the header's transaction root.
    pub inclusion: Vec<u8>,
    /// The finalization of the boundary block (simplex, ed25519).
    pub certificate: Vec<u8>,
}

/// Why an epoch link does not prove the next set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The link is for another epoch than the next one.
    #[error("epoch link is for epoch {found}, expected {expected}")]
    WrongEpoch {
        /// The epoch after the last verified one.
        expected: u64,
        /// The link's.
        found: u64,
    },
    /// The header is not the last block of the epoch before.
    #[error("epoch link header is at height {found}, the boundary is {expected}")]
    NotBoundary {
        /// The boundary height.
        expected: u64,
        /// The header's.
        found: u64,
    },
    /// The change is not the block's last item.
    #[error("epoch change is not in the boundary block: {0}")]
    NotIncluded(crate::block::InclusionError),
    /// The certificate does not decode, is for another block or epoch, or does not verify.
    #[error("epoch link certificate: {0}")]
    BadCertificate(String),
    /// The chain has no epochs.
    #[error("this chain's validator set is fixed")]
    NoEpochs,
}

/// Canonical bytes: the 80-byte header, the change, the index, the path and the certificate.
impl Canonical for EpochLink {
    const WHAT: &'static str = "epoch link";

    fn encode(&self, w: &mut Writer) {
        self.header.encode(w);
        w.bytes(&self.change.to_canonical());
        w.u32(self.index);
        w.bytes(&self.inclusion);
        w.bytes(&self.certificate);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            header: Header::decode(r)?,
            change: EpochChange::from_canonical(r.bytes("epoch change")?)?,
            index: r.u32("epoch change index")?,
            inclusion: r.bytes("epoch change path")?.to_vec(),
            certificate: r.bytes("epoch certificate")?.to_vec(),
        })
    }
}

/// Checks that `link` proves the set of epoch `epoch + 1`, given the set of `epoch`.
pub fn verify_link(params: &ValidatorParams, epoch: u64, set: &[[u8; 32]], link: &EpochLink) -> Result<(), LinkError> {
    if !params.epochs() {
        return Err(LinkError::NoEpochs);
    }
    if link.change.epoch != epoch + 1 {
        return Err(LinkError::WrongEpoch { expected: epoch + 1, found: link.change.epoch });
    }
    let boundary = params.last_height(epoch);
    if link.header.height != boundary {
        return Err(LinkError::NotBoundary { expected: boundary, found: link.header.height });
    }
    verify_inclusion(&link.change.to_canonical(), link.index, &link.header.tx_root, &link.inclusion)
        .map_err(LinkError::NotIncluded)?;
    let keys = keys(set).ok_or_else(|| LinkError::BadCertificate("the set holds an invalid key".into()))?;
    verify_finalization(&link.certificate, &keys, epoch, &link.header).map_err(LinkError::BadCertificate)
}

/// Checks a finalization certificate of `header`'s block by `set` in `epoch`.
pub fn verify_finalization(
    certificate: &[u8],
    set: &Set<ed25519::PublicKey>,
    epoch: u64,
    header: &Header,
) -> Result<(), String> {
    let fin = decode_finalization(certificate, set)?;
    let verifier = Scheme::verifier(NAMESPACE, set.clone());
    if fin.proposal.payload != sha256::Digest::from(header.digest()) {
        return Err("for another block".into());
    }
    if fin.proposal.round.epoch().get() != epoch {
        return Err(format!("of epoch {}, expected {epoch}", fin.proposal.round.epoch().get()));
    }
    if !fin.verify(&mut commonware_utils::sys_rng(), &verifier, &Sequential) {
        return Err("signatures do not verify against the set".into());
    }
    Ok(())
}

/// Decodes a finalization certificate (as an [`EpochLink`] carries it) for verification by `set`.
pub fn decode_finalization(
    certificate: &[u8],
    set: &Set<ed25519::PublicKey>,
) -> Result<Finalization<Scheme, sha256::Digest>, String> {
    let verifier = Scheme::verifier(NAMESPACE, set.clone());
    Finalization::<Scheme, sha256::Digest>::decode_cfg(
        Bytes::copy_from_slice(certificate),
        &verifier.certificate_codec_config(),
    )
    .map_err(|e| format!("malformed: {e}"))
}

/// Encodes a finalization for an [`EpochLink`].
pub fn encode_certificate(fin: &Finalization<Scheme, sha256::Digest>) -> Vec<u8> {
    fin.encode().to_vec()
}

/// The validator set of every epoch a verifier knows: from the genesis set, through verified [`EpochLink`]s (or, for
/// a node, the sets its own executed ledger fixed).
#[derive(Debug, Clone)]
pub struct ValidatorSets {
    params: ValidatorParams,
    sets: BTreeMap<u64, Vec<[u8; 32]>>,
    /// State roots the verified links commit to, by height.
    roots: BTreeMap<u64, [u8; 32]>,
}

impl ValidatorSets {
    /// A chain whose genesis set validates forever.
    pub fn fixed(validators: &[ed25519::PublicKey]) -> Self {
        let set = validators.iter().map(|k| k.as_ref().try_into().expect("32-byte keys")).collect();
        Self { params: ValidatorParams::default(), sets: BTreeMap::from([(0, set)]), roots: BTreeMap::new() }
    }

    /// The genesis set of a chain with `params`, followed through `links` (each checked against the set before it).
    pub fn from_links(params: &ValidatorParams, genesis: &[[u8; 32]], links: &[EpochLink]) -> Result<Self, LinkError> {
        let mut set: Vec<[u8; 32]> = genesis.to_vec();
        set.sort_unstable();
        set.dedup();
        let mut out = Self { params: params.clone(), sets: BTreeMap::from([(0, set)]), roots: BTreeMap::new() };
        for link in links {
            out.follow(link)?;
        }
        Ok(out)
    }

    /// Checks `link` against the newest set and, if it proves the next one, adds that set and its state root.
    pub fn follow(&mut self, link: &EpochLink) -> Result<(), LinkError> {
        let (epoch, set) = self.sets.iter().next_back().map(|(e, s)| (*e, s.clone())).expect("genesis");
        verify_link(&self.params, epoch, &set, link)?;
        self.sets.insert(epoch + 1, link.change.validators.clone());
        self.roots.insert(EpochChange::root_height(&self.params, epoch), link.change.state_root);
        Ok(())
    }

    /// Adds a set this verifier trusts (a node's own executed ledger).
    pub fn insert(&mut self, epoch: u64, set: Vec<[u8; 32]>) {
        self.sets.insert(epoch, set);
    }

    /// The epoch of `height`.
    pub fn epoch_of(&self, height: u64) -> u64 {
        self.params.epoch_of(height)
    }

    /// The set of `epoch`, if known.
    pub fn get(&self, epoch: u64) -> Option<Set<ed25519::PublicKey>> {
        keys(self.sets.get(&epoch)?)
    }

    /// Every known set, by epoch.
    pub fn sets(&self) -> &BTreeMap<u64, Vec<[u8; 32]>> {
        &self.sets
    }

    /// The ledger state roots the verified links commit to, by height (one per epoch: the root at its start).
    pub fn state_roots(&self) -> &BTreeMap<u64, [u8; 32]> {
        &self.roots
    }

    /// The newest epoch known.
    pub fn latest(&self) -> u64 {
        self.sets.keys().next_back().copied().unwrap_or(0)
    }
}

/// The link that proves epoch `epoch + 1`'s set as `chain`'s node holds it: in memory (learned in a state sync or built
/// before), or built from its archive by [`build_link`] and kept.
pub async fn link_for(
    chain: &crate::chain::Chain,
    marshal: &commonware_consensus::marshal::core::Mailbox<
        Scheme,
        commonware_consensus::marshal::standard::Standard<Block>,
    >,
    epoch: u64,
) -> Option<EpochLink> {
    if let Some(link) = chain.learned_link(epoch) {
        return Some(link);
    }
    let link = build_link(&chain.genesis().params.validators, marshal, epoch).await?;
    chain.remember_link(epoch, link.clone());
    Some(link)
}

/// Builds the link that proves epoch `epoch + 1`'s set from a validator's archive: the boundary block of `epoch` and
/// its finalization (`None` if either is not stored here).
pub async fn build_link(
    params: &ValidatorParams,
    marshal: &commonware_consensus::marshal::core::Mailbox<
        Scheme,
        commonware_consensus::marshal::standard::Standard<Block>,
    >,
    epoch: u64,
) -> Option<EpochLink> {
    use commonware_consensus::types::Height;
    if !params.epochs() {
        return None;
    }
    let height = params.last_height(epoch);
    let block = marshal.get_block(Height::new(height)).await?;
    let fin = marshal.get_finalization(Height::new(height)).await?;
    let (_, item) = split(params, block.inner());
    let change = EpochChange::from_canonical(item?).ok()?;
    let index = (block.inner().txs().len() - 1) as u32;
    Some(EpochLink {
        header: *block.inner().header(),
        change,
        index,
        inclusion: block.inner().inclusion_proof(index)?,
        certificate: encode_certificate(&fin),
    })
}

//! Tables that live on disk: the ones that grow with the number of users (accounts, models), whose entries a
//! [`Backing`] store keeps while memory holds only what changed since the last flush.
//!
//! A [`Spill`] table without a backing is an ordinary in-memory map (tests, and chains that keep no disk). With one,
//! the backing holds the table as of the last [`Spill::flushed`] checkpoint and memory holds an overlay: every entry
//! changed since (a new value, or a deletion), plus entries loaded by a write since. Reads of other keys go to the
//! backing, so resident memory is bounded by the entries touched between two checkpoints, not by the table's size.
//! The state root does not depend on where an entry lives: it is the same multiset hash over the same entry bytes.
//!
//! The backing is synchronous (the ledger's execution is): a read that fails is a storage fault the executor cannot
//! recover from deterministically, so it panics with the store's error rather than executing on a wrong value.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use vouch_codec::{DecodeError, Reader, Writer};

/// A store of table entries by key bytes (one namespace per table name), as of the last checkpoint.
pub trait Backing: Send + Sync + fmt::Debug {
    /// The entry bytes stored under `key` in `table`, if any.
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, String>;
    /// Calls `f` on every `(key, entry bytes)` of `table` in key order.
    fn scan(&self, table: &str, f: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), String>;
}

/// How a spilled table's entries are stored: its name, the key bytes of a key, and its canonical entry bytes (the
/// same bytes the state root hashes) with their decoder.
pub struct Codec<K, V> {
    /// The table's name in the backing.
    pub name: &'static str,
    /// The key bytes of a key (their order is the table's order on disk).
    pub key: fn(&K) -> Vec<u8>,
    /// The entry's canonical bytes.
    pub encode: fn(&mut Writer, &K, &V),
    /// Reads the entry's canonical bytes back.
    pub decode: fn(&mut Reader<'_>) -> Result<(K, V), DecodeError>,
}

/// One changed entry to write at a checkpoint: key bytes, and the entry bytes (`None`: deleted).
pub type Write = (Vec<u8>, Option<Vec<u8>>);

/// A change-tracking map whose entries may live in a [`Backing`]: see the module docs.
pub struct Spill<K: Ord + Clone + 'static, V: Clone + 'static> {
    codec: &'static Codec<K, V>,
    backing: Option<Arc<dyn Backing>>,
    /// Without a backing, every entry (`Some`). With one, the overlay: a value loaded or written since the last
    /// flush (`Some`), or a deletion not yet flushed (`None`).
    mem: BTreeMap<K, Option<V>>,
    /// Keys whose overlay value is not in the backing yet.
    dirty: BTreeSet<K>,
    /// Entries changed since the last [`Spill::take_changes`]: key -> value before the first change.
    before: BTreeMap<K, Option<V>>,
}

impl<K: Ord + Clone, V: Clone> Clone for Spill<K, V> {
    fn clone(&self) -> Self {
        Self {
            codec: self.codec,
            backing: self.backing.clone(),
            mem: self.mem.clone(),
            dirty: self.dirty.clone(),
            before: self.before.clone(),
        }
    }
}

impl<K: Ord + Clone + fmt::Debug, V: Clone> fmt::Debug for Spill<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spill")
            .field("table", &self.codec.name)
            .field("on_disk", &self.backing.is_some())
            .field("resident", &self.mem.len())
            .field("dirty", &self.dirty.len())
            .finish()
    }
}

/// Equal entries, wherever they live (a full scan with a backing: for tests and audits).
impl<K: Ord + Clone, V: Clone + PartialEq> PartialEq for Spill<K, V> {
    fn eq(&self, other: &Self) -> bool {
        let (mut a, mut b) = (vec![], vec![]);
        self.for_each(|k, v| a.push((k.clone(), v.clone())));
        other.for_each(|k, v| b.push((k.clone(), v.clone())));
        let key = |e: &(K, V)| (self.codec.key)(&e.0);
        a.sort_by_key(key);
        b.sort_by_key(key);
        a == b
    }
}

impl<K: Ord + Clone, V: Clone + Eq> Eq for Spill<K, V> {}

impl<K: Ord + Clone, V: Clone> Spill<K, V> {
    /// An in-memory table with these entries.
    pub fn new(codec: &'static Codec<K, V>, entries: BTreeMap<K, V>) -> Self {
        let mem = entries.into_iter().map(|(k, v)| (k, Some(v))).collect();
        Self { codec, backing: None, mem, dirty: BTreeSet::new(), before: BTreeMap::new() }
    }

    /// Moves the table onto `backing`, which must hold none of its entries yet (an empty store, or one a checkpoint
    /// of this very table wrote, for an empty table restored from it): the entries in memory are written at the
    /// next flush.
    pub fn attach(&mut self, backing: Arc<dyn Backing>) {
        self.dirty.extend(self.mem.keys().cloned());
        self.backing = Some(backing);
    }

    /// Whether the table lives on a backing.
    pub fn is_backed(&self) -> bool {
        self.backing.is_some()
    }

    /// Entries held in memory.
    pub fn resident(&self) -> usize {
        self.mem.len()
    }

    fn load(&self, k: &K) -> Option<V> {
        let backing = self.backing.as_ref()?;
        let key = (self.codec.key)(k);
        let bytes = backing
            .get(self.codec.name, &key)
            .unwrap_or_else(|e| panic!("ledger store: reading {} failed: {e}", self.codec.name))?;
        let (stored, v) = self.decode_stored(&bytes);
        assert!(stored == *k, "ledger store: {} entry under a key it does not carry", self.codec.name);
        Some(v)
    }

    fn decode_stored(&self, bytes: &[u8]) -> (K, V) {
        let mut r = Reader::new(bytes);
        let entry = (self.codec.decode)(&mut r).and_then(|e| r.finish(self.codec.name).map(|()| e));
        entry.unwrap_or_else(|e| panic!("ledger store: a stored {} entry does not decode: {e}", self.codec.name))
    }

    /// An entry.
    pub fn get(&self, k: &K) -> Option<V> {
        match self.mem.get(k) {
            Some(v) => v.clone(),
            None => self.load(k),
        }
    }

    /// Whether an entry exists.
    pub fn contains_key(&self, k: &K) -> bool {
        match self.mem.get(k) {
            Some(v) => v.is_some(),
            None => self.load(k).is_some(),
        }
    }

    /// Brings `k` into memory and records it as changed.
    fn touch(&mut self, k: &K) -> &mut Option<V> {
        if !self.mem.contains_key(k) {
            let loaded = self.load(k);
            self.mem.insert(k.clone(), loaded);
        }
        let slot = self.mem.get_mut(k).expect("inserted above");
        if !self.before.contains_key(k) {
            self.before.insert(k.clone(), slot.clone());
        }
        if self.backing.is_some() {
            self.dirty.insert(k.clone());
        }
        slot
    }

    /// Mutable access to an entry.
    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.touch(k).as_mut()
    }

    /// Mutable access to an entry, inserting the default first if absent.
    pub fn entry_or_default(&mut self, k: K) -> &mut V
    where
        V: Default,
    {
        self.touch(&k).get_or_insert_with(V::default)
    }

    /// Inserts or replaces an entry.
    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        self.touch(&k).replace(v)
    }

    /// Removes an entry.
    pub fn remove(&mut self, k: &K) -> Option<V> {
        let old = self.touch(k).take();
        if self.backing.is_none() {
            self.mem.remove(k);
        }
        old
    }

    /// The changed entries, each with its value before and after (`None`: absent), forgetting them.
    pub(crate) fn take_changes(&mut self) -> Vec<(K, Option<V>, Option<V>)> {
        std::mem::take(&mut self.before)
            .into_iter()
            .map(|(k, old)| {
                let new = self.mem.get(&k).cloned().flatten();
                (k, old, new)
            })
            .collect()
    }

    /// Whether entries changed since the last [`Spill::take_changes`].
    pub(crate) fn is_dirty(&self) -> bool {
        !self.before.is_empty()
    }

    /// Calls `f` on every entry: in key order without a backing, in key-bytes order with one (the backing's entries
    /// merged with the overlay, which wins).
    pub fn for_each(&self, mut f: impl FnMut(&K, &V)) {
        let Some(backing) = &self.backing else {
            self.mem.iter().filter_map(|(k, v)| Some((k, v.as_ref()?))).for_each(|(k, v)| f(k, v));
            return;
        };
        let overlay: BTreeMap<Vec<u8>, (&K, Option<&V>)> =
            self.mem.iter().map(|(k, v)| ((self.codec.key)(k), (k, v.as_ref()))).collect();
        let mut pending = overlay.iter().peekable();
        backing
            .scan(self.codec.name, &mut |key, bytes| {
                while let Some((_, (k, v))) = pending.next_if(|(ok, _)| ok.as_slice() < key) {
                    if let Some(v) = v {
                        f(k, v);
                    }
                }
                match pending.next_if(|(ok, _)| ok.as_slice() == key) {
                    Some((_, (k, Some(v)))) => f(k, v),
                    Some((_, (_, None))) => {}
                    None => {
                        let (k, v) = self.decode_stored(bytes);
                        f(&k, &v);
                    }
                }
            })
            .unwrap_or_else(|e| panic!("ledger store: scanning {} failed: {e}", self.codec.name));
        pending.filter_map(|(_, (k, v))| Some((*k, (*v)?))).for_each(|(k, v)| f(k, v));
    }

    /// Every entry's key and canonical bytes not yet in the backing (nothing without one), for a checkpoint.
    pub fn writes(&self) -> Vec<Write> {
        self.dirty
            .iter()
            .map(|k| {
                let value = self.mem.get(k).cloned().flatten().map(|v| {
                    let mut w = Writer::new();
                    (self.codec.encode)(&mut w, k, &v);
                    w.finish()
                });
                ((self.codec.key)(k), value)
            })
            .collect()
    }

    /// The backing now holds [`Spill::writes`]: memory forgets every entry (reads go to the backing again). Call
    /// between blocks, with nothing changed since the writes were taken.
    pub fn flushed(&mut self) {
        if self.backing.is_some() && self.before.is_empty() {
            self.dirty.clear();
            self.mem.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Entry bytes by (table, key bytes).
    type Entries = BTreeMap<(String, Vec<u8>), Vec<u8>>;

    #[derive(Debug, Default)]
    struct MemBacking(Mutex<Entries>);

    impl MemBacking {
        fn apply(&self, table: &str, writes: Vec<Write>) {
            let mut m = self.0.lock().unwrap();
            for (k, v) in writes {
                match v {
                    Some(v) => m.insert((table.to_owned(), k), v),
                    None => m.remove(&(table.to_owned(), k)),
                };
            }
        }
    }

    impl Backing for MemBacking {
        fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
            Ok(self.0.lock().unwrap().get(&(table.to_owned(), key.to_vec())).cloned())
        }
        fn scan(&self, table: &str, f: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), String> {
            for ((t, k), v) in self.0.lock().unwrap().iter() {
                if t == table {
                    f(k, v);
                }
            }
            Ok(())
        }
    }

    static CODEC: Codec<u16, u32> = Codec {
        name: "t",
        key: |k| k.to_be_bytes().to_vec(),
        encode: |w, k, v| {
            w.u16(*k);
            w.u32(*v);
        },
        decode: |r| Ok((r.u16("k")?, r.u32("v")?)),
    };

    /// One step of a random workload.
    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16, u32),
        Add(u16, u32),
        Remove(u16),
        /// Fold the pending changes (what the state does after each transaction).
        Take,
        /// Write the changes to the backing and forget them (a checkpoint).
        Flush,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        // Few keys, so operations hit the same entries in and out of memory.
        prop_oneof![
            (0u16..24, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            (0u16..24, 0u32..1000).prop_map(|(k, v)| Op::Add(k, v)),
            (0u16..24).prop_map(Op::Remove),
            Just(Op::Take),
            Just(Op::Flush),
        ]
    }

    proptest::proptest! {
        /// A backed table behaves exactly like an in-memory one (and like a plain map) under any interleaving of
        /// writes, change folds and checkpoints: the same reads, the same reported changes, the same entries.
        #[test]
        fn a_backed_table_equals_an_in_memory_one_under_any_checkpoint_schedule(
            ops in proptest::collection::vec(op(), 1..120),
        ) {
            let disk = Arc::new(MemBacking::default());
            let mut backed = Spill::new(&CODEC, BTreeMap::new());
            backed.attach(disk.clone());
            let mut memory = Spill::new(&CODEC, BTreeMap::new());
            let mut model: BTreeMap<u16, u32> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        proptest::prop_assert_eq!(backed.insert(k, v), model.insert(k, v));
                        memory.insert(k, v);
                    }
                    Op::Add(k, v) => {
                        *backed.entry_or_default(k) += v;
                        *memory.entry_or_default(k) += v;
                        *model.entry(k).or_default() += v;
                    }
                    Op::Remove(k) => {
                        proptest::prop_assert_eq!(backed.remove(&k), model.remove(&k));
                        memory.remove(&k);
                    }
                    Op::Take => proptest::prop_assert_eq!(backed.take_changes(), memory.take_changes()),
                    Op::Flush => {
                        // A checkpoint comes after the changes are folded (between blocks).
                        proptest::prop_assert_eq!(backed.take_changes(), memory.take_changes());
                        disk.apply("t", backed.writes());
                        backed.flushed();
                        proptest::prop_assert_eq!(backed.resident(), 0);
                    }
                }
                for k in 0u16..24 {
                    proptest::prop_assert_eq!(backed.get(&k), model.get(&k).copied());
                    proptest::prop_assert_eq!(backed.contains_key(&k), model.contains_key(&k));
                }
            }
            let mut seen = vec![];
            backed.for_each(|k, v| seen.push((*k, *v)));
            proptest::prop_assert_eq!(seen, model.into_iter().collect::<Vec<_>>());
            proptest::prop_assert!(backed == memory);
        }
    }

    #[test]
    fn a_backed_table_reads_through_forgets_flushed_entries_and_merges_scans() {
        let disk = Arc::new(MemBacking::default());
        let mut t = Spill::new(&CODEC, BTreeMap::from([(1, 10), (3, 30)]));
        t.attach(disk.clone());
        disk.apply("t", t.writes());
        t.flushed();
        assert_eq!(t.resident(), 0);
        assert_eq!(t.get(&3), Some(30));
        assert!(!t.contains_key(&2));
        *t.entry_or_default(2) += 20;
        t.remove(&1);
        *t.get_mut(&3).unwrap() += 1;
        assert_eq!(t.take_changes(), vec![(1, Some(10), None), (2, None, Some(20)), (3, Some(30), Some(31))]);
        let mut seen = vec![];
        t.for_each(|k, v| seen.push((*k, *v)));
        assert_eq!(seen, vec![(2, 20), (3, 31)], "the overlay wins and hides deleted entries");
        disk.apply("t", t.writes());
        t.flushed();
        assert_eq!(t.resident(), 0);
        let mut on_disk = vec![];
        t.for_each(|k, v| on_disk.push((*k, *v)));
        assert_eq!(on_disk, seen);
        let memory = Spill::new(&CODEC, BTreeMap::from([(2, 20), (3, 31)]));
        assert_eq!(t, memory, "equality looks at entries, not where they live");
    }
}

//! Incrementally hashed state.
//!
//! Every map of the [`crate::State`] is a [`Table`]: reads go through `Deref` to the `BTreeMap`; every write goes
//! through a method that first records the entry's previous value. [`crate::State`] folds those changes into an
//! [`LtHash`] (a lattice-based homomorphic multiset hash, Bellare–Micciancio / Lewi et al.): the hash of a set of
//! entries is the lane-wise sum mod 2^16 of 1024 16-bit lanes expanded from each entry with blake3's XOF, so adding,
//! removing or changing one entry costs one expansion, and the state root costs O(entries changed) per block instead
//! of O(state).

use std::collections::BTreeMap;
use std::ops::Deref;

/// Lanes of an [`LtHash`] (16 bits each: 2 KiB).
const LANES: usize = 1024;

/// A multiset hash: order-independent, updated by adding and subtracting element hashes.
#[derive(Clone, PartialEq, Eq)]
pub struct LtHash(Box<[u16; LANES]>);

impl Default for LtHash {
    fn default() -> Self {
        Self(Box::new([0; LANES]))
    }
}

impl std::fmt::Debug for LtHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LtHash({})", hex::encode(&blake3::hash(&self.to_bytes()).as_bytes()[..8]))
    }
}

impl LtHash {
    /// The element hash of `bytes`: blake3 (derive-key mode, `VOUCH_STATE_ENTRY_V1`) expanded to 2 KiB.
    pub fn of(bytes: &[u8]) -> Self {
        let mut h = blake3::Hasher::new_derive_key("VOUCH_STATE_ENTRY_V1");
        h.update(bytes);
        let mut out = [0u8; LANES * 2];
        h.finalize_xof().fill(&mut out);
        let mut lanes = Box::new([0u16; LANES]);
        for (l, c) in lanes.iter_mut().zip(out.chunks_exact(2)) {
            *l = u16::from_le_bytes([c[0], c[1]]);
        }
        Self(lanes)
    }

    /// Adds an element.
    pub fn add(&mut self, e: &LtHash) {
        self.0.iter_mut().zip(e.0.iter()).for_each(|(a, b)| *a = a.wrapping_add(*b));
    }

    /// Removes an element.
    pub fn sub(&mut self, e: &LtHash) {
        self.0.iter_mut().zip(e.0.iter()).for_each(|(a, b)| *a = a.wrapping_sub(*b));
    }

    /// The lanes, little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|l| l.to_le_bytes()).collect()
    }
}

/// A map that records the previous value of every entry it changes, until [`Table::take_changes`].
#[derive(Debug, Clone)]
pub struct Table<K: Ord + Clone, V: Clone> {
    map: BTreeMap<K, V>,
    /// Entries changed since the last [`Table::take_changes`]: key -> value before the first change.
    before: BTreeMap<K, Option<V>>,
}

impl<K: Ord + Clone, V: Clone> Default for Table<K, V> {
    fn default() -> Self {
        Self { map: BTreeMap::new(), before: BTreeMap::new() }
    }
}

impl<K: Ord + Clone, V: Clone + PartialEq> PartialEq for Table<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl<K: Ord + Clone, V: Clone + Eq> Eq for Table<K, V> {}

impl<K: Ord + Clone, V: Clone> Deref for Table<K, V> {
    type Target = BTreeMap<K, V>;
    fn deref(&self) -> &BTreeMap<K, V> {
        &self.map
    }
}

impl<K: Ord + Clone, V: Clone> Table<K, V> {
    fn touch(&mut self, k: &K) {
        if !self.before.contains_key(k) {
            self.before.insert(k.clone(), self.map.get(k).cloned());
        }
    }

    /// Mutable access to an entry.
    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.touch(k);
        self.map.get_mut(k)
    }

    /// Mutable access to an entry, inserting the default first if absent.
    pub fn entry_or_default(&mut self, k: K) -> &mut V
    where
        V: Default,
    {
        self.touch(&k);
        self.map.entry(k).or_default()
    }

    /// Inserts or replaces an entry.
    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        self.touch(&k);
        self.map.insert(k, v)
    }

    /// Removes an entry.
    pub fn remove(&mut self, k: &K) -> Option<V> {
        self.touch(k);
        self.map.remove(k)
    }

    /// The changed entries, each with its value before and after (`None`: absent), forgetting them.
    pub(crate) fn take_changes(&mut self) -> Vec<(K, Option<V>, Option<V>)> {
        std::mem::take(&mut self.before)
            .into_iter()
            .map(|(k, old)| {
                let new = self.map.get(&k).cloned();
                (k, old, new)
            })
            .collect()
    }

    /// Whether entries changed since the last [`Table::take_changes`].
    pub(crate) fn is_dirty(&self) -> bool {
        !self.before.is_empty()
    }
}

impl<K: Ord + Clone, V: Clone> From<BTreeMap<K, V>> for Table<K, V> {
    fn from(map: BTreeMap<K, V>) -> Self {
        Self { map, before: BTreeMap::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_multiset_hash_ignores_order_and_undoes_removals() {
        let (a, b, c) = (LtHash::of(b"a"), LtHash::of(b"b"), LtHash::of(b"c"));
        let mut x = LtHash::default();
        x.add(&a);
        x.add(&b);
        let mut y = LtHash::default();
        y.add(&b);
        y.add(&c);
        y.add(&a);
        y.sub(&c);
        assert_eq!(x, y);
        assert_ne!(x, LtHash::default());
        let mut z = x.clone();
        z.add(&a);
        assert_ne!(z, x, "a multiset: adding an element twice is not adding it once");
    }

    #[test]
    fn a_table_reports_each_changed_entry_once_with_its_first_value() {
        let mut t: Table<u8, u32> = Table::from(BTreeMap::from([(1, 10), (2, 20)]));
        *t.get_mut(&1).unwrap() += 1;
        *t.get_mut(&1).unwrap() += 1;
        *t.entry_or_default(3) += 5;
        t.remove(&2);
        let _ = t.get(&1); // reads are not changes
        assert!(t.is_dirty());
        assert_eq!(t.take_changes(), vec![(1, Some(10), Some(12)), (2, Some(20), None), (3, None, Some(5))]);
        assert!(!t.is_dirty());
        assert_eq!(t.take_changes(), vec![]);
    }
}

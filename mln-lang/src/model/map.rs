//! [`VecMap`]: a map kept as a vector sorted by key, for the model's small
//! per-host maps.
//!
//! A host's origin has a dozen keywords, an interface's a handful, its
//! written sizes two or three; as `BTreeMap`s each of them cost a B-tree
//! leaf of eleven slots (half a kilobyte for `String` pairs) and an
//! allocation per insert path, once per host. A sorted vector holds the
//! same entries in one allocation of their own size, and reads like a map:
//! the same lookups, ordered iteration, and the same `serde` form (a map,
//! keys in order), so the JSON model does not change.

use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Index;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A map kept as a vector of entries sorted by key (each key once).
///
/// Lookups are binary searches; inserting keeps the order, which is cheap
/// for the few keys it is meant for and for keys inserted in ascending
/// order (an append). Collecting from an iterator sorts once, so building
/// a large one that way is `O(n log n)`; for duplicate keys the last value
/// wins, as with [`BTreeMap`](std::collections::BTreeMap).
///
/// ```
/// use mln_lang::model::VecMap;
///
/// let mut m: VecMap<String, u32> = VecMap::new();
/// m.insert("b".to_string(), 2);
/// m.insert("a".to_string(), 1);
/// assert_eq!(m["a"], 1);
/// assert_eq!(m.get("b"), Some(&2));
/// assert_eq!(m.keys().map(String::as_str).collect::<Vec<_>>(), ["a", "b"]);
/// assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"a":1,"b":2}"#);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VecMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        VecMap {
            entries: Vec::new(),
        }
    }
}

impl<K, V> VecMap<K, V> {
    /// An empty map (no allocation).
    pub const fn new() -> Self {
        VecMap {
            entries: Vec::new(),
        }
    }

    /// An empty map with room for `n` entries.
    pub fn with_capacity(n: usize) -> Self {
        VecMap {
            entries: Vec::with_capacity(n),
        }
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there is no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + ExactSizeIterator {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// Entries in key order, values mutable.
    pub fn iter_mut(
        &mut self,
    ) -> impl DoubleEndedIterator<Item = (&K, &mut V)> + ExactSizeIterator {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    /// Keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + ExactSizeIterator {
        self.entries.iter().map(|(k, _)| k)
    }

    /// Values in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator {
        self.entries.iter().map(|(_, v)| v)
    }

    /// The first entry (smallest key).
    pub fn first_key_value(&self) -> Option<(&K, &V)> {
        self.entries.first().map(|(k, v)| (k, v))
    }

    /// The last entry (largest key).
    pub fn last_key_value(&self) -> Option<(&K, &V)> {
        self.entries.last().map(|(k, v)| (k, v))
    }

    /// Remove every entry, keeping the room.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

impl<K: Ord, V> VecMap<K, V> {
    /// Where `key` is (`Ok`) or would go (`Err`).
    fn search<Q>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        // Keys mostly arrive in order: check the end first.
        match self.entries.last() {
            None => return Err(0),
            Some((last, _)) if last.borrow() < key => return Err(self.entries.len()),
            Some(_) => {}
        }
        self.entries.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    /// The value for `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let i = self.search(key).ok()?;
        self.entries.get(i).map(|(_, v)| v)
    }

    /// The key and value for `key`.
    pub fn get_key_value<Q>(&self, key: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let i = self.search(key).ok()?;
        self.entries.get(i).map(|(k, v)| (k, v))
    }

    /// The value for `key`, mutable.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let i = self.search(key).ok()?;
        self.entries.get_mut(i).map(|(_, v)| v)
    }

    /// True when `key` has a value.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.search(key).is_ok()
    }

    /// Set `key` to `value`; the old value, if there was one.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.search(&key) {
            Ok(i) => self
                .entries
                .get_mut(i)
                .map(|(_, v)| std::mem::replace(v, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    /// The value for `key`, set to `make()` first when there is none.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.search(&key) {
            Ok(i) => i,
            Err(i) => {
                self.entries.insert(i, (key, make()));
                i
            }
        };
        // `i` is in bounds: it was found or just filled.
        &mut self.entries[i].1
    }

    /// Remove `key`; its value, if it had one.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let i = self.search(key).ok()?;
        Some(self.entries.remove(i).1)
    }

    /// Keep only the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
    }

    /// Sort `entries` by key; of equal keys the last one stays.
    fn from_entries(mut entries: Vec<(K, V)>) -> Self {
        // A stable sort keeps equal keys in arrival order; keep the last.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(K, V)> = Vec::with_capacity(entries.len());
        for e in entries {
            match out.last_mut() {
                Some(last) if last.0 == e.0 => *last = e,
                _ => out.push(e),
            }
        }
        VecMap { entries: out }
    }
}

impl<K, V, Q> Index<&Q> for VecMap<K, V>
where
    K: Ord + Borrow<Q>,
    Q: Ord + ?Sized,
{
    type Output = V;

    /// The value for `key`.
    ///
    /// # Panics
    ///
    /// When `key` is not in the map, like `BTreeMap`'s indexing.
    fn index(&self, key: &Q) -> &V {
        match self.get(key) {
            Some(v) => v,
            None => panic!("key not in the map"),
        }
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for VecMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        VecMap::from_entries(iter.into_iter().collect())
    }
}

impl<K: Ord, V, const N: usize> From<[(K, V); N]> for VecMap<K, V> {
    fn from(entries: [(K, V); N]) -> Self {
        VecMap::from_entries(entries.into())
    }
}

impl<K: Ord, V> Extend<(K, V)> for VecMap<K, V> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl<K, V> IntoIterator for VecMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<'m, K, V> IntoIterator for &'m VecMap<K, V> {
    type Item = (&'m K, &'m V);
    type IntoIter = std::iter::Map<std::slice::Iter<'m, (K, V)>, fn(&'m (K, V)) -> (&'m K, &'m V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for VecMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Serialize, V: Serialize> Serialize for VecMap<K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, K, V> Deserialize<'de> for VecMap<K, V>
where
    K: Ord + Deserialize<'de>,
    V: Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<K, V>(PhantomData<(K, V)>);

        impl<'de, K, V> Visitor<'de> for MapVisitor<K, V>
        where
            K: Ord + Deserialize<'de>,
            V: Deserialize<'de>,
        {
            type Value = VecMap<K, V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                // Bounded, as serde's own maps do: the hint is the input's word.
                let mut entries = Vec::with_capacity(access.size_hint().unwrap_or(0).min(4096));
                while let Some(entry) = access.next_entry()? {
                    entries.push(entry);
                }
                Ok(VecMap::from_entries(entries))
            }
        }

        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn behaves_like_a_btree_map() {
        let pairs = [(5, "e"), (1, "a"), (3, "c"), (1, "z"), (9, "i"), (3, "y")];
        let mut v: VecMap<u32, &str> = VecMap::new();
        let mut b: BTreeMap<u32, &str> = BTreeMap::new();
        for (k, x) in pairs {
            assert_eq!(v.insert(k, x), b.insert(k, x));
        }
        assert!(v.iter().eq(b.iter()));
        assert_eq!(v.remove(&3), b.remove(&3));
        assert_eq!(v.remove(&4), b.remove(&4));
        assert!(v.iter().eq(b.iter()));
        let collected: VecMap<u32, &str> = pairs.into_iter().collect();
        let expected: BTreeMap<u32, &str> = pairs.into_iter().collect();
        assert!(collected.iter().eq(expected.iter()));
        assert_eq!(collected[&1], "z");
        assert_eq!(collected.get(&2), None);
    }

    #[test]
    fn serde_form_is_a_btree_maps() {
        let pairs = [("b", 2), ("a", 1), ("c", 3)];
        let v: VecMap<String, u32> = pairs.iter().map(|(k, x)| (k.to_string(), *x)).collect();
        let b: BTreeMap<String, u32> = pairs.iter().map(|(k, x)| (k.to_string(), *x)).collect();
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, serde_json::to_string(&b).unwrap());
        let back: VecMap<String, u32> =
            serde_json::from_str(r#"{"c":3,"a":0,"b":2,"a":1}"#).unwrap();
        assert_eq!(back, v);
        assert_eq!(format!("{v:?}"), format!("{b:?}"));
    }

    #[test]
    fn borrowed_lookups() {
        let mut m: VecMap<std::borrow::Cow<'static, str>, u32> = VecMap::new();
        m.insert("memory".into(), 1);
        m.insert(String::from("zz").into(), 2);
        assert_eq!(m.get("memory"), Some(&1));
        assert!(m.contains_key("zz"));
        *m.get_or_insert_with("aa".into(), || 7) += 1;
        assert_eq!(m["aa"], 8);
    }
}

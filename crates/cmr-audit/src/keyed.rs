//! One value per [`Metric`] or per [`Stat`], serialized as a JSON object keyed by name in report order.

use std::marker::PhantomData;

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::disparity::Stat;
use crate::metrics::Metric;

/// A closed set of named keys.
pub trait Key: Copy + 'static {
    /// Every key, in report order.
    fn all() -> &'static [Self];
    /// Name in the reports.
    fn name(self) -> &'static str;
}

impl Key for Metric {
    fn all() -> &'static [Self] {
        &Metric::ALL
    }
    fn name(self) -> &'static str {
        Metric::name(self)
    }
}

impl Key for Stat {
    fn all() -> &'static [Self] {
        &Stat::ALL
    }
    fn name(self) -> &'static str {
        Stat::name(self)
    }
}

/// A value for each key `K`.
#[derive(Debug, Clone, PartialEq)]
pub struct Keyed<K, T> {
    values: Vec<T>,
    key: PhantomData<K>,
}

impl<K: Key + PartialEq, T> Keyed<K, T> {
    /// Builds the value of every key.
    pub fn from_fn(f: impl FnMut(K) -> T) -> Self {
        Self { values: K::all().iter().copied().map(f).collect(), key: PhantomData }
    }

    /// The value of `key`.
    pub fn get(&self, key: K) -> &T {
        let index = K::all().iter().position(|k| *k == key).expect("every key has a value");
        &self.values[index]
    }

    /// Keys with their values, in report order.
    pub fn iter(&self) -> impl Iterator<Item = (K, &T)> {
        K::all().iter().copied().zip(&self.values)
    }
}

impl<K: Key, T: Serialize> Serialize for Keyed<K, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.values.len()))?;
        for (key, value) in K::all().iter().zip(&self.values) {
            map.serialize_entry(key.name(), value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_in_report_order() {
        let keyed: Keyed<Metric, usize> = Keyed::from_fn(|m: Metric| m.index());
        let json = serde_json::to_string(&keyed).unwrap();
        assert!(json.starts_with(r#"{"prevalence":0,"accuracy":1,"balanced_accuracy":2,"#), "{json}");
        assert_eq!(*keyed.get(Metric::Mcc), 11);
    }
}

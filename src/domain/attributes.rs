//! [`Attributes`]: a user's `name → value` strings, held compactly.
//!
//! Every user in the in-memory policy carries one, so its size counts: a
//! `BTreeMap` allocates a whole node (eleven key/value slots, ~540 bytes)
//! even for the usual single `company` entry, which was 40 % of the policy's
//! memory with a million users. Here the pairs live in one vector, sorted by
//! name and sized exactly; lookups are a binary search. It reads, iterates,
//! serialises (as a JSON object, names in order) and compares like the map
//! it replaces.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A user's attributes: at most [`MAX_ATTRIBUTES`](super::MAX_ATTRIBUTES)
/// names, each value at most
/// [`MAX_ATTRIBUTE_VALUE_LEN`](super::MAX_ATTRIBUTE_VALUE_LEN) characters
/// without control characters (checked where they enter).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Attributes(Vec<(String, String)>);

impl Attributes {
    pub fn new() -> Self {
        Attributes(Vec::new())
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(name))
    }

    pub fn get(&self, name: &str) -> Option<&String> {
        self.position(name).ok().map(|i| &self.0[i].1)
    }

    /// Sets `name`, returning the value it replaces.
    pub fn insert(&mut self, name: String, value: String) -> Option<String> {
        match self.position(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.reserve_exact(1);
                self.0.insert(i, (name, value));
                None
            }
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        let i = self.position(name).ok()?;
        let (_, value) = self.0.remove(i);
        self.0.shrink_to_fit();
        Some(value)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.position(name).is_ok()
    }

    /// The names, in order.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The pairs, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl FromIterator<(String, String)> for Attributes {
    /// A later value for a name replaces an earlier one, as in a map.
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        let mut out = Attributes::new();
        for (k, v) in pairs {
            out.insert(k, v);
        }
        out.0.shrink_to_fit();
        out
    }
}

impl<const N: usize> From<[(String, String); N]> for Attributes {
    fn from(pairs: [(String, String); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl<'a> IntoIterator for &'a Attributes {
    type Item = (&'a String, &'a String);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, String)>,
        fn(&'a (String, String)) -> (&'a String, &'a String),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl Serialize for Attributes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Attributes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AttributesVisitor;

        impl<'de> Visitor<'de> for AttributesVisitor {
            type Value = Attributes;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Attributes, A::Error> {
                let mut out = Attributes(Vec::with_capacity(access.size_hint().unwrap_or(0)));
                while let Some((k, v)) = access.next_entry::<String, String>()? {
                    out.insert(k, v);
                }
                out.0.shrink_to_fit();
                Ok(out)
            }
        }

        deserializer.deserialize_map(AttributesVisitor)
    }
}

impl utoipa::PartialSchema for Attributes {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <std::collections::BTreeMap<String, String> as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for Attributes {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> Attributes {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn it_reads_and_writes_like_a_map_in_name_order() {
        let mut a = attrs(&[("region", "eu"), ("company", "acme")]);
        assert_eq!(a.get("company").map(String::as_str), Some("acme"));
        assert_eq!(a.get("missing"), None);
        assert_eq!(
            a.insert("company".into(), "globex".into()).as_deref(),
            Some("acme")
        );
        assert_eq!(a.insert("beta".into(), "1".into()), None);
        let names: Vec<&str> = a.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["beta", "company", "region"]);
        assert_eq!(a.remove("beta").as_deref(), Some("1"));
        assert_eq!(a.remove("beta"), None);
        assert_eq!(a.len(), 2);
        assert_eq!(a, attrs(&[("company", "globex"), ("region", "eu")]));
    }

    #[test]
    fn json_is_an_object_in_name_order_both_ways() {
        let a = attrs(&[("region", "eu"), ("company", "acme")]);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, r#"{"company":"acme","region":"eu"}"#);
        let back: Attributes = serde_json::from_str(r#"{"region":"eu","company":"acme"}"#).unwrap();
        assert_eq!(back, a);
        assert!(serde_json::from_str::<Attributes>(r#"{"company":1}"#).is_err());
        assert!(serde_json::from_str::<Attributes>("[]").is_err());
    }

    #[test]
    fn one_attribute_takes_one_slot() {
        let a = attrs(&[("company", "acme")]);
        assert_eq!(a.0.capacity(), 1);
        let b: Attributes = serde_json::from_str(r#"{"company":"acme"}"#).unwrap();
        assert_eq!(b.0.capacity(), 1);
    }
}

//! What a pipeline table may hold, read off its serde struct: the key names (serde's own field list, so the check
//! can never drift from the struct), which keys hold paths, and which hold sub-tables. Used to reject unknown keys
//! with a suggestion and to name the key whose value has the wrong type — serde's messages name neither the table
//! nor, for a type error, the key.

use serde::de::{self, DeserializeOwned, Visitor};
use serde::forward_to_deserialize_any;

use crate::error::{Origin, PipelineError, Result};
use crate::suggest::did_you_mean;

/// A table of a pipeline file: a serde struct with `#[serde(default, deny_unknown_fields)]`.
pub trait Section: DeserializeOwned {
    /// Where the path starts in `value` when key `key` holds a path (resolved against the pipeline file's folder),
    /// as a byte offset (`Some(0)`: the whole value; `counts:FILE` gives the offset of `FILE`); `None`: no path.
    fn path_offset(_key: &str, _value: &str) -> Option<usize> {
        None
    }

    /// Keys that hold sub-tables (or arrays of tables, each with this schema), with their schema.
    fn nested() -> Vec<(&'static str, Schema)> {
        Vec::new()
    }
}

/// The shape of one table, type-erased.
#[derive(Clone, Copy)]
pub struct Schema {
    /// Key names.
    pub keys: &'static [&'static str],
    /// [`Section::path_offset`].
    pub path_offset: fn(&str, &str) -> Option<usize>,
    /// [`Section::nested`].
    pub nested: fn() -> Vec<(&'static str, Schema)>,
    probe: fn(toml::Value) -> std::result::Result<(), String>,
}

impl Schema {
    /// The schema of `T`.
    pub fn of<T: Section>() -> Self {
        Self {
            keys: field_names::<T>(),
            path_offset: T::path_offset,
            nested: T::nested,
            probe: |value| value.try_into::<T>().map(drop).map_err(|e| e.message().trim_end().to_string()),
        }
    }

    /// The schema of sub-table `key`, if it is one.
    pub fn child(&self, key: &str) -> Option<Schema> {
        (self.nested)().into_iter().find(|(k, _)| *k == key).map(|(_, s)| s)
    }

    /// Checks that every key of `table` (named `name`) is known, recursively.
    pub fn check_keys(&self, table: &toml::Table, name: &str, origin: &dyn Fn(&str) -> Origin) -> Result<()> {
        for (key, value) in table {
            let dotted = join(name, key);
            if !self.keys.contains(&key.as_str()) {
                return Err(PipelineError::UnknownKey {
                    origin: origin(&dotted),
                    table: display_name(name),
                    key: key.clone(),
                    suggestion: did_you_mean(key, self.keys).map(str::to_string),
                });
            }
            if let Some(child) = self.child(key) {
                for sub in sub_tables(value) {
                    child.check_keys(sub, &dotted, origin)?;
                }
            }
        }
        Ok(())
    }

    /// The first key of `table` whose value does not deserialize, with serde's message (every field of a section
    /// has a default, so a table of that one key alone deserializes exactly when its value is right).
    pub fn locate_error(
        &self,
        table: &toml::Table,
        name: &str,
        origin: &dyn Fn(&str) -> Origin,
    ) -> Option<PipelineError> {
        for (key, value) in table {
            let dotted = join(name, key);
            if let Some(child) = self.child(key) {
                if let Some(err) = sub_tables(value).find_map(|sub| child.locate_error(sub, &dotted, origin)) {
                    return Some(err);
                }
            }
            let single = toml::Table::from_iter([(key.clone(), value.clone())]);
            if let Err(message) = (self.probe)(toml::Value::Table(single)) {
                let (table, key) = (display_name(name), key.clone());
                return Some(PipelineError::Invalid { origin: origin(&dotted), table, key, message });
            }
        }
        None
    }
}

/// The tables a sub-table key holds: the table itself, or each table of an array of tables (`[[cohort.sources]]`).
pub(crate) fn sub_tables(value: &toml::Value) -> Box<dyn Iterator<Item = &toml::Table> + '_> {
    match value {
        toml::Value::Table(table) => Box::new(std::iter::once(table)),
        toml::Value::Array(items) => Box::new(items.iter().filter_map(toml::Value::as_table)),
        _ => Box::new(std::iter::empty()),
    }
}

/// `a.b` (or `b` at the top level).
pub(crate) fn join(table: &str, key: &str) -> String {
    if table.is_empty() {
        key.to_string()
    } else {
        format!("{table}.{key}")
    }
}

/// The table as written in messages: `top level` for the root.
fn display_name(name: &str) -> String {
    if name.is_empty() {
        "top level".into()
    } else {
        name.to_string()
    }
}

/// The field names serde's derive passes to `deserialize_struct` for `T`.
///
/// # Panics
/// If `T` does not deserialize as a struct (a programming error: every section is a derived struct).
pub fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields = None;
    let _ = T::deserialize(FieldCapture(&mut fields));
    fields.expect("a section is a struct with named fields")
}

/// A deserializer that records the field list of the struct asked of it, then stops.
struct FieldCapture<'a>(&'a mut Option<&'static [&'static str]>);

impl<'de> de::Deserializer<'de> for FieldCapture<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> std::result::Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        *self.0 = Some(fields);
        Err(de::Error::custom("fields captured"))
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Inner {
        steps: usize,
    }

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Outer {
        name: String,
        inner: Inner,
    }

    impl Section for Inner {}
    impl Section for Outer {
        fn nested() -> Vec<(&'static str, Schema)> {
            vec![("inner", Schema::of::<Inner>())]
        }
    }

    fn origin(key: &str) -> Origin {
        Origin::Flag(key.to_string())
    }

    #[test]
    fn field_names_come_from_serde() {
        assert_eq!(field_names::<Outer>(), ["name", "inner"]);
    }

    #[test]
    fn unknown_nested_key_is_named_with_its_table_and_a_suggestion() {
        let table: toml::Table = toml::from_str("name = 'x'\n[inner]\nstesp = 3\n").unwrap();
        let err = Schema::of::<Outer>().check_keys(&table, "", &origin).unwrap_err();
        assert_eq!(err.to_string(), "--set inner.stesp: unknown key `stesp` in [inner]; did you mean `steps`?");
    }

    #[test]
    fn type_error_is_located_at_its_key() {
        let table: toml::Table = toml::from_str("name = 'x'\n[inner]\nsteps = 'many'\n").unwrap();
        let err = Schema::of::<Outer>().locate_error(&table, "", &origin).expect("a type error");
        let text = err.to_string();
        assert!(text.starts_with("--set inner.steps: [inner] steps: invalid type: string"), "{text}");
    }
}

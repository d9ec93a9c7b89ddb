//! Record filters for `store.where`, `findOne`, `count`, the aggregates and transactions.

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// A record filter: a JSON object the store matches records against.
///
/// Build one with [`Filter::field`] and the operator methods of [`Field`], combine with
/// [`Filter::and`] / [`Filter::or`], or wrap raw JSON with [`Filter::raw`] (every
/// `serde_json::Value` converts into a `Filter` too). The builder produces exactly the
/// operators `@hamicek/noex-store` 0.2.0 implements (its `filter-matcher`): per field
/// `$eq`, `$neq`, `$gt`, `$gte`, `$lt`, `$lte`, `$in`, `$nin`, `$contains`
/// (case-insensitive substring), `$startsWith`, `$endsWith`, `$exists`, `$between`
/// (inclusive), and at the top level `$or` and `$and`. Equality is written as the plain
/// value (`{"role": "admin"}`), which lets the store use an index. There is no `$ne`: the
/// store ignores operators it does not know, so a misspelt one matches every record.
///
/// ```
/// use noex_proto::ops::Filter;
/// use serde_json::json;
///
/// let adults: Filter = Filter::field("age").gte(18).lt(65).into();
/// assert_eq!(adults.to_value(), json!({"age": {"$gte": 18, "$lt": 65}}));
///
/// let admins = Filter::field("age").gte(18).and(Filter::field("role").eq("admin"));
/// assert_eq!(admins.to_value(), json!({"age": {"$gte": 18}, "role": "admin"}));
///
/// let either = Filter::or([
///     Filter::field("name").starts_with("Al"),
///     Filter::field("tags").exists(false),
/// ]);
/// assert_eq!(
///     either.to_value(),
///     json!({"$or": [{"name": {"$startsWith": "Al"}}, {"tags": {"$exists": false}}]})
/// );
///
/// // Raw JSON works wherever a filter goes.
/// let raw: Filter = json!({"role": {"$in": ["admin", "owner"]}}).into();
/// assert_eq!(raw, Filter::field("role").one_of(["admin", "owner"]).into());
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter(Value);

impl Filter {
    /// The empty filter: matches every record. Where the filter is optional (`count`,
    /// `sum`, …) an empty filter is left out of the request.
    pub fn all() -> Filter {
        Filter(Value::Object(Map::new()))
    }

    /// A filter from raw JSON, sent as is (no check of its operators).
    pub fn raw(json: Value) -> Filter {
        Filter(json)
    }

    /// Conditions on one field; chain operators on the returned [`Field`].
    pub fn field(name: impl Into<String>) -> Field {
        Field {
            name: name.into(),
            ops: Map::new(),
        }
    }

    /// Records matching at least one of `filters` (`$or`).
    pub fn or<F: Into<Filter>>(filters: impl IntoIterator<Item = F>) -> Filter {
        Filter::combine("$or", filters)
    }

    /// Records matching every one of `filters`. Conditions on different fields are merged
    /// into one object; anything else is combined with `$and`.
    pub fn all_of<F: Into<Filter>>(filters: impl IntoIterator<Item = F>) -> Filter {
        filters.into_iter().fold(Filter::all(), |acc, f| acc.and(f))
    }

    fn combine<F: Into<Filter>>(op: &str, filters: impl IntoIterator<Item = F>) -> Filter {
        let list: Vec<Value> = filters.into_iter().map(|f| f.into().0).collect();
        let mut map = Map::new();
        map.insert(op.to_owned(), Value::Array(list));
        Filter(Value::Object(map))
    }

    /// Records matching this filter and `other`.
    pub fn and(self, other: impl Into<Filter>) -> Filter {
        let other = other.into();
        match (self.0, other.0) {
            (Value::Object(a), b) if a.is_empty() => Filter(b),
            (a, Value::Object(b)) if b.is_empty() => Filter(a),
            (Value::Object(mut a), Value::Object(b))
                if b.keys().all(|k| !k.starts_with('$') && !a.contains_key(k))
                    && !a.keys().any(|k| k.starts_with('$')) =>
            {
                a.extend(b);
                Filter(Value::Object(a))
            }
            (a, b) => Filter::combine("$and", [Filter(a), Filter(b)]),
        }
    }

    /// Records matching this filter or `other` (`$or`).
    pub fn or_else(self, other: impl Into<Filter>) -> Filter {
        Filter::or([self, other.into()])
    }

    /// Whether this is the empty filter (matches every record).
    pub fn is_empty(&self) -> bool {
        matches!(&self.0, Value::Object(map) if map.is_empty())
    }

    /// The filter's JSON.
    pub fn as_value(&self) -> &Value {
        &self.0
    }

    /// The filter's JSON, cloned.
    pub fn to_value(&self) -> Value {
        self.0.clone()
    }

    /// The filter's JSON.
    pub fn into_value(self) -> Value {
        self.0
    }

    /// `Some(json)` unless the filter is empty; for requests where the filter is optional.
    pub(crate) fn optional(filter: Option<&Filter>) -> Option<&Value> {
        filter.filter(|f| !f.is_empty()).map(Filter::as_value)
    }
}

impl Serialize for Filter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl From<Value> for Filter {
    fn from(json: Value) -> Filter {
        Filter(json)
    }
}

impl From<Field> for Filter {
    fn from(field: Field) -> Filter {
        if field.ops.is_empty() {
            // A field with no operator is no condition at all.
            return Filter::all();
        }
        let value = match field.ops.get("$eq") {
            // Plain equality (index-friendly); an object value keeps `$eq` so the store
            // cannot read its keys as operators.
            Some(v) if field.ops.len() == 1 && !v.is_object() => v.clone(),
            _ => Value::Object(field.ops),
        };
        let mut map = Map::new();
        map.insert(field.name, value);
        Filter(Value::Object(map))
    }
}

/// Conditions on one field, from [`Filter::field`]. Operators chain
/// (`Filter::field("age").gte(18).lt(65)`); a `Field` converts into a [`Filter`] wherever
/// one is expected.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    name: String,
    ops: Map<String, Value>,
}

impl Field {
    fn op(mut self, op: &str, value: Value) -> Field {
        self.ops.insert(op.to_owned(), value);
        self
    }

    /// Equal to `value` (written as the plain value).
    pub fn eq(self, value: impl Into<Value>) -> Field {
        self.op("$eq", value.into())
    }
    /// Not equal to `value` (`$neq`).
    pub fn neq(self, value: impl Into<Value>) -> Field {
        self.op("$neq", value.into())
    }
    /// Greater than `value` (`$gt`; numbers or strings).
    pub fn gt(self, value: impl Into<Value>) -> Field {
        self.op("$gt", value.into())
    }
    /// Greater than or equal to `value` (`$gte`).
    pub fn gte(self, value: impl Into<Value>) -> Field {
        self.op("$gte", value.into())
    }
    /// Less than `value` (`$lt`).
    pub fn lt(self, value: impl Into<Value>) -> Field {
        self.op("$lt", value.into())
    }
    /// Less than or equal to `value` (`$lte`).
    pub fn lte(self, value: impl Into<Value>) -> Field {
        self.op("$lte", value.into())
    }
    /// One of `values` (`$in`).
    pub fn one_of<V: Into<Value>>(self, values: impl IntoIterator<Item = V>) -> Field {
        let list = values.into_iter().map(Into::into).collect();
        self.op("$in", Value::Array(list))
    }
    /// None of `values` (`$nin`).
    pub fn none_of<V: Into<Value>>(self, values: impl IntoIterator<Item = V>) -> Field {
        let list = values.into_iter().map(Into::into).collect();
        self.op("$nin", Value::Array(list))
    }
    /// A string containing `text`, ignoring case (`$contains`).
    pub fn contains(self, text: impl Into<String>) -> Field {
        self.op("$contains", Value::String(text.into()))
    }
    /// A string starting with `prefix` (`$startsWith`, case-sensitive).
    pub fn starts_with(self, prefix: impl Into<String>) -> Field {
        self.op("$startsWith", Value::String(prefix.into()))
    }
    /// A string ending with `suffix` (`$endsWith`, case-sensitive).
    pub fn ends_with(self, suffix: impl Into<String>) -> Field {
        self.op("$endsWith", Value::String(suffix.into()))
    }
    /// Present and not null (`true`), or missing or null (`false`) (`$exists`).
    pub fn exists(self, exists: bool) -> Field {
        self.op("$exists", Value::Bool(exists))
    }
    /// Between `low` and `high`, both included (`$between`).
    pub fn between(self, low: impl Into<Value>, high: impl Into<Value>) -> Field {
        self.op("$between", Value::Array(vec![low.into(), high.into()]))
    }

    /// This condition and `other`.
    pub fn and(self, other: impl Into<Filter>) -> Filter {
        Filter::from(self).and(other)
    }
    /// This condition or `other` (`$or`).
    pub fn or_else(self, other: impl Into<Filter>) -> Filter {
        Filter::from(self).or_else(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_operator_has_the_stores_spelling() {
        let f = Filter::field("x")
            .eq(json!({"a": 1}))
            .neq(1)
            .gt(1)
            .gte(1)
            .lt(1)
            .lte(1)
            .one_of([1])
            .none_of([2])
            .contains("a")
            .starts_with("b")
            .ends_with("c")
            .exists(true)
            .between(1, 2);
        let Value::Object(ops) = Filter::from(f).into_value()["x"].clone() else {
            panic!("not an object")
        };
        let mut names: Vec<&str> = ops.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut expected = [
            "$eq",
            "$neq",
            "$gt",
            "$gte",
            "$lt",
            "$lte",
            "$in",
            "$nin",
            "$contains",
            "$startsWith",
            "$endsWith",
            "$exists",
            "$between",
        ];
        expected.sort_unstable();
        assert_eq!(names, expected);
    }

    #[test]
    fn and_merges_disjoint_fields_and_nests_the_rest() {
        let same = Filter::field("a").eq(1).and(Filter::field("a").eq(2));
        assert_eq!(same.to_value(), json!({"$and": [{"a": 1}, {"a": 2}]}));
        let or = Filter::or([Filter::field("a").eq(1)]).and(Filter::field("b").eq(2));
        assert_eq!(
            or.to_value(),
            json!({"$and": [{"$or": [{"a": 1}]}, {"b": 2}]})
        );
        assert!(Filter::all().and(Filter::all()).is_empty());
        assert!(Filter::from(Filter::field("a")).is_empty());
        assert_eq!(
            Filter::all_of([Filter::field("a").eq(1), Filter::field("b").eq(2)]).to_value(),
            json!({"a": 1, "b": 2})
        );
    }
}

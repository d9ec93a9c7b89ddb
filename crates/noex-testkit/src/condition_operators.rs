//! The comparison operators of conditions: one list, with one evaluation, for the two
//! places that have them. Rule conditions (noex-rules `evaluateCondition`) accept every
//! operator; procedure `if` steps (noex-server's procedure executor) accept a subset and
//! order values differently, each as its source does (see [`Relation`]).

use std::cmp::Ordering;

use serde_json::Value;

use crate::json::{js_cmp, strict_eq};

/// A condition operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operator {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    NotIn,
    Contains,
    NotContains,
    Matches,
    Exists,
    NotExists,
}

/// How `gt`, `gte`, `lt` and `lte` order two values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relation {
    /// noex-rules: both values must be numbers, else the comparison is false.
    NumbersOnly,
    /// noex-server's procedures: JavaScript's `>` on the two values, as [`js_cmp`] orders
    /// them (two numbers, two strings or two booleans; anything else is false).
    JavaScript,
}

/// The operators one engine's conditions accept, and how it orders values.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dialect {
    operators: &'static [Operator],
    relation: Relation,
}

/// Rule conditions: every operator, in the order of noex-rules' `CONDITION_OPERATORS`.
pub(crate) const RULES: Dialect = Dialect {
    operators: &[
        Operator::Eq,
        Operator::Neq,
        Operator::Gt,
        Operator::Gte,
        Operator::Lt,
        Operator::Lte,
        Operator::In,
        Operator::NotIn,
        Operator::Contains,
        Operator::NotContains,
        Operator::Matches,
        Operator::Exists,
        Operator::NotExists,
    ],
    relation: Relation::NumbersOnly,
};

/// Procedure `if` steps: noex-server's `VALID_CONDITION_OPS`, in its order.
pub(crate) const PROCEDURES: Dialect = Dialect {
    operators: &[
        Operator::Eq,
        Operator::Neq,
        Operator::Gt,
        Operator::Gte,
        Operator::Lt,
        Operator::Lte,
        Operator::Exists,
        Operator::NotExists,
    ],
    relation: Relation::JavaScript,
};

impl Operator {
    /// The operator's name on the wire.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Operator::Eq => "eq",
            Operator::Neq => "neq",
            Operator::Gt => "gt",
            Operator::Gte => "gte",
            Operator::Lt => "lt",
            Operator::Lte => "lte",
            Operator::In => "in",
            Operator::NotIn => "not_in",
            Operator::Contains => "contains",
            Operator::NotContains => "not_contains",
            Operator::Matches => "matches",
            Operator::Exists => "exists",
            Operator::NotExists => "not_exists",
        }
    }

    /// `exists` and `not_exists`: they look at the actual value alone (a condition with
    /// them needs no `value`).
    pub(crate) fn tests_presence(self) -> bool {
        matches!(self, Operator::Exists | Operator::NotExists)
    }

    /// Whether `actual <self> expected` holds (`None` is JavaScript's `undefined`);
    /// equality and membership are strict (`===`, `includes`), `matches` is an unanchored
    /// regex search that a pattern the `regex` crate refuses never passes.
    fn holds(self, actual: Option<&Value>, expected: Option<&Value>, relation: Relation) -> bool {
        let (a, e) = (actual, expected);
        let order = || relation.order(a, e);
        let includes = |l: &[Value], x: Option<&Value>| l.iter().any(|i| strict_eq(Some(i), x));
        let absent = matches!(a, None | Some(Value::Null));
        match self {
            Operator::Eq => strict_eq(a, e),
            Operator::Neq => !strict_eq(a, e),
            Operator::Gt => order().is_some_and(Ordering::is_gt),
            Operator::Gte => order().is_some_and(Ordering::is_ge),
            Operator::Lt => order().is_some_and(Ordering::is_lt),
            Operator::Lte => order().is_some_and(Ordering::is_le),
            Operator::In => e.and_then(Value::as_array).is_some_and(|l| includes(l, a)),
            Operator::NotIn => e.and_then(Value::as_array).is_some_and(|l| !includes(l, a)),
            Operator::Contains => match (a, e) {
                (Some(Value::String(s)), Some(Value::String(x))) => s.contains(x.as_str()),
                (Some(Value::Array(l)), x) => includes(l, x),
                _ => false,
            },
            Operator::NotContains => match (a, e) {
                (Some(Value::String(s)), Some(Value::String(x))) => !s.contains(x.as_str()),
                (Some(Value::Array(l)), x) => !includes(l, x),
                _ => true,
            },
            Operator::Matches => match (a, e) {
                (Some(Value::String(s)), Some(Value::String(re))) => regex::RegexBuilder::new(re)
                    .size_limit(1 << 20)
                    .build()
                    .is_ok_and(|r| r.is_match(s)),
                _ => false,
            },
            Operator::Exists => !absent,
            Operator::NotExists => absent,
        }
    }
}

impl Relation {
    /// How `actual` stands to `expected`; `None` when they are not ordered.
    fn order(self, actual: Option<&Value>, expected: Option<&Value>) -> Option<Ordering> {
        match (self, actual?, expected?) {
            (Relation::NumbersOnly, Value::Number(x), Value::Number(y)) => {
                x.as_f64()?.partial_cmp(&y.as_f64()?)
            }
            (Relation::NumbersOnly, _, _) => None,
            (Relation::JavaScript, a, e) => js_cmp(a, e),
        }
    }
}

impl Dialect {
    /// The operator called `name`, when this dialect accepts it.
    pub(crate) fn operator(&self, name: &str) -> Option<Operator> {
        self.operators.iter().copied().find(|o| o.name() == name)
    }

    /// `eq, neq, …`: the names, as the validators' messages list them.
    pub(crate) fn names(&self) -> String {
        let names: Vec<&str> = self.operators.iter().map(|o| o.name()).collect();
        names.join(", ")
    }

    /// Whether `actual <operator> expected` holds; an operator this dialect does not
    /// accept never holds.
    pub(crate) fn holds(
        &self,
        operator: &str,
        actual: Option<&Value>,
        expected: Option<&Value>,
    ) -> bool {
        self.operator(operator)
            .is_some_and(|o| o.holds(actual, expected, self.relation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(op: &str, a: Value, e: Value) -> bool {
        RULES.holds(op, Some(&a), Some(&e))
    }

    fn procedure(op: &str, a: Value, e: Value) -> bool {
        PROCEDURES.holds(op, Some(&a), Some(&e))
    }

    #[test]
    fn names_as_the_validators_list_them() {
        assert_eq!(
            RULES.names(),
            "eq, neq, gt, gte, lt, lte, in, not_in, contains, not_contains, matches, exists, \
             not_exists"
        );
        assert_eq!(
            PROCEDURES.names(),
            "eq, neq, gt, gte, lt, lte, exists, not_exists"
        );
        assert_eq!(RULES.operator("not_in"), Some(Operator::NotIn));
        assert_eq!(PROCEDURES.operator("in"), None);
        assert!(!PROCEDURES.holds("in", Some(&json!(1)), Some(&json!([1]))));
        assert!(!RULES.holds("ne", Some(&json!(1)), Some(&json!(2))));
    }

    #[test]
    fn rules_order_numbers_only_procedures_as_javascript() {
        assert!(rule("gt", json!(2), json!(1.5)));
        assert!(rule("lte", json!(2), json!(2)));
        assert!(!rule("gt", json!("b"), json!("a")));
        assert!(procedure("gt", json!("b"), json!("a")));
        assert!(procedure("gte", json!(true), json!(false)));
        assert!(!procedure("gt", json!("10"), json!(5)));
        assert!(!RULES.holds("lt", None, Some(&json!(1))));
        assert!(!PROCEDURES.holds("lt", None, Some(&json!(1))));
    }

    #[test]
    fn equality_membership_and_presence() {
        assert!(rule("eq", json!(1), json!(1.0)));
        assert!(!rule("eq", json!({}), json!({})));
        assert!(RULES.holds("neq", Some(&json!(null)), None));
        assert!(rule("in", json!("a"), json!(["a", "b"])));
        assert!(!rule("not_in", json!("a"), json!("abc")));
        assert!(rule("contains", json!("abc"), json!("b")));
        assert!(rule("contains", json!([1, 2]), json!(2)));
        assert!(rule("not_contains", json!(5), json!(5)));
        assert!(rule("matches", json!("order-17"), json!("\\d+$")));
        assert!(!rule("matches", json!("x"), json!("(?=x)")));
        assert!(RULES.holds("not_exists", Some(&json!(null)), None));
        assert!(PROCEDURES.holds("exists", Some(&json!(0)), None));
        assert!(Operator::NotExists.tests_presence());
        assert!(!Operator::Eq.tests_presence());
    }
}

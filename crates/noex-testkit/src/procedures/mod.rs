//! Server-side procedures (noex-server `src/procedures/`): the registry and the entry
//! points of the `procedures.*` operations. A definition is checked by `validate`, a
//! call's input by `input`; `exec` runs the steps, every step action the real server has
//! (`store.get/where/findOne/insert/update/delete/count`, `aggregate`,
//! `rules.emit/setFact/getFact`, `if`, `transform`, `return`), reading the input and
//! earlier results through `scope` (`{{ ref }}` templates) and computing `aggregate` and
//! `transform` in `reshape`. Procedure timeouts are not enforced (steps run synchronously
//! in memory).

mod exec;
mod input;
mod reshape;
mod scope;
mod validate;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::error::{OpError, OpResult};
use crate::json::obj;
use validate::validate;

pub(crate) use exec::Exec;

/// A JSON object.
type Object = Map<String, Value>;

/// Registered procedures, in registration order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Procedures {
    procs: IndexMap<String, Map<String, Value>>,
}

fn not_found(name: &str) -> OpError {
    OpError::not_found(format!("Procedure \"{name}\" not found"))
}

impl Procedures {
    pub(crate) fn register(&mut self, config: &Map<String, Value>) -> OpResult {
        validate(config)?;
        let name = config
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if self.procs.contains_key(&name) {
            return Err(OpError::already_exists(format!(
                "Procedure \"{name}\" already exists"
            )));
        }
        self.procs.insert(name.clone(), config.clone());
        Ok(obj([("name", name.into()), ("registered", true.into())]))
    }

    pub(crate) fn unregister(&mut self, name: &str) -> OpResult {
        if self.procs.shift_remove(name).is_none() {
            return Err(not_found(name));
        }
        Ok(obj([("name", name.into()), ("unregistered", true.into())]))
    }

    pub(crate) fn update(&mut self, name: &str, updates: &Map<String, Value>) -> OpResult {
        let existing = self.procs.get(name).ok_or_else(|| not_found(name))?;
        let mut merged = existing.clone();
        for (k, v) in updates {
            merged.insert(k.clone(), v.clone());
        }
        merged.insert("name".into(), name.into());
        validate(&merged)?;
        self.procs.insert(name.to_string(), merged);
        Ok(obj([("name", name.into()), ("updated", true.into())]))
    }

    pub(crate) fn get(&self, name: &str) -> OpResult {
        self.procs
            .get(name)
            .map(|p| Value::Object(p.clone()))
            .ok_or_else(|| not_found(name))
    }

    pub(crate) fn list(&self) -> Value {
        let list: Vec<Value> = self
            .procs
            .values()
            .map(|p| {
                let mut m = Map::new();
                m.insert("name".into(), p.get("name").cloned().unwrap_or(Value::Null));
                if let Some(d) = p.get("description") {
                    m.insert("description".into(), d.clone());
                }
                let steps = p.get("steps").and_then(Value::as_array).map_or(0, Vec::len);
                m.insert("stepsCount".into(), steps.into());
                Value::Object(m)
            })
            .collect();
        obj([("procedures", Value::Array(list))])
    }

    /// Look up a procedure and validate/complete its input: `(procedure, input)`.
    pub(crate) fn prepare_call(
        &self,
        name: &str,
        input: &Map<String, Value>,
    ) -> Result<(Object, Object), OpError> {
        let p = self.procs.get(name).ok_or_else(|| not_found(name))?;
        Ok((p.clone(), input::complete(p, input)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::store::Store;
    use serde_json::json;

    /// The `result` of a call with one `if` step: `"then"` or `"else"`.
    fn branch(procs: &Procedures, input: Value) -> Value {
        let input = input.as_object().cloned().unwrap_or_default();
        let Ok((p, input)) = procs.prepare_call("p", &input) else {
            return Value::Null;
        };
        let steps = p["steps"].as_array().cloned().unwrap_or_default();
        let mut store = Store::new(Clock::system());
        let mut pushes = Vec::new();
        let mut exec = Exec::new(&mut store, None, &mut pushes, input);
        match exec.run(&steps) {
            Ok(()) => exec.finish()["result"].clone(),
            Err(e) => e.message.into(),
        }
    }

    fn with_if(operator: &str, value: Value) -> Procedures {
        let mut procs = Procedures::default();
        let config = json!({"name": "p", "steps": [{
            "action": "if",
            "condition": {"ref": "input.x", "operator": operator, "value": value},
            "then": [{"action": "return", "value": "then"}],
            "else": [{"action": "return", "value": "else"}]
        }]});
        let registered = procs.register(config.as_object().unwrap_or(&Map::new()));
        assert!(registered.is_ok(), "{registered:?}");
        procs
    }

    #[test]
    fn if_steps_compare_as_the_server_does() {
        let gt = with_if("gt", json!("b"));
        assert_eq!(
            branch(&gt, json!({"x": "c"})),
            "then",
            "strings are ordered"
        );
        assert_eq!(branch(&gt, json!({"x": 3})), "else");
        let eq = with_if("eq", json!("{{ input.y }}"));
        assert_eq!(branch(&eq, json!({"x": 2, "y": 2})), "then");
        assert_eq!(branch(&eq, json!({"x": 2, "y": "2"})), "else");
        let exists = with_if("not_exists", Value::Null);
        assert_eq!(branch(&exists, json!({})), "then");
        assert_eq!(branch(&exists, json!({"x": 0})), "else");
    }

    #[test]
    fn if_steps_take_the_procedure_operators_only() {
        let config = json!({"name": "p", "steps": [{
            "action": "if",
            "condition": {"ref": "input.x", "operator": "in", "value": [1]},
            "then": [{"action": "return", "value": 1}]
        }]});
        let err = Procedures::default()
            .register(config.as_object().unwrap_or(&Map::new()))
            .err()
            .map(|e| e.message);
        assert_eq!(
            err.as_deref(),
            Some(
                "Procedure validation failed: steps[0].condition.operator: expected one of: eq, \
                 neq, gt, gte, lt, lte, exists, not_exists"
            )
        );
    }
}

//! One call's execution (noex-server `procedure-executor.ts`): the steps in order until
//! the end or a `return`; the store and rule engine steps, `if` (its condition with the
//! procedures' operators), and the answer `{success, result?, results}`. A failing step
//! ends the call with its error.

use serde_json::{Map, Value};

use super::reshape;
use super::scope::Scope;
use crate::condition_operators::PROCEDURES;
use crate::error::OpError;
use crate::json::js_string;
use crate::rules::{EventPush, Rules};
use crate::store::Store;

/// Execution state of one call.
pub(crate) struct Exec<'a> {
    pub(crate) store: &'a mut Store,
    pub(crate) rules: Option<&'a mut Rules>,
    pub(crate) pushes: &'a mut Vec<EventPush>,
    scope: Scope,
    returned: Option<Value>,
}

impl<'a> Exec<'a> {
    pub(crate) fn new(
        store: &'a mut Store,
        rules: Option<&'a mut Rules>,
        pushes: &'a mut Vec<EventPush>,
        input: Map<String, Value>,
    ) -> Self {
        Exec {
            store,
            rules,
            pushes,
            scope: Scope::new(input),
            returned: None,
        }
    }

    /// Run steps until done or `return`.
    pub(crate) fn run(&mut self, steps: &[Value]) -> Result<(), OpError> {
        for step in steps {
            if self.returned.is_some() {
                break;
            }
            let Value::Object(s) = step else { continue };
            self.step(s)?;
        }
        Ok(())
    }

    /// The call's answer: `{success, result?, results}`.
    pub(crate) fn finish(self) -> Value {
        let mut m = Map::new();
        m.insert("success".into(), true.into());
        if let Some(r) = self.returned {
            m.insert("result".into(), r);
        }
        m.insert(
            "results".into(),
            Value::Object(self.scope.into_results().into_iter().collect()),
        );
        Value::Object(m)
    }

    /// Field `f` of a step, resolved (`null` when absent).
    fn resolved(&self, s: &Map<String, Value>, f: &str) -> Value {
        self.scope.resolve(s.get(f).unwrap_or(&Value::Null))
    }

    /// Field `f` of a step, resolved, when an object (else empty).
    fn obj_of(&self, s: &Map<String, Value>, f: &str) -> Map<String, Value> {
        match s.get(f).map(|v| self.scope.resolve(v)) {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }

    /// Store `v` under the step's `as` name, when it has one.
    fn set(&mut self, s: &Map<String, Value>, v: Value) {
        if let Some(Value::String(name)) = s.get("as") {
            self.scope.set_result(name, v);
        }
    }

    fn rules(&mut self, what: &str) -> Result<&mut Rules, OpError> {
        self.rules
            .as_deref_mut()
            .ok_or_else(|| OpError::internal(format!("{what}: rule engine is not configured")))
    }

    fn step(&mut self, s: &Map<String, Value>) -> Result<(), OpError> {
        match s.get("action").and_then(Value::as_str).unwrap_or("") {
            action if action.starts_with("store.") => self.store_step(action, s)?,
            "aggregate" => {
                let v = reshape::aggregate(s, &self.scope)?;
                self.set(s, v);
            }
            "rules.emit" => {
                let topic = js_string(&self.resolved(s, "topic"));
                let data = Value::Object(self.obj_of(s, "data"));
                let mut pushes = Vec::new();
                self.rules("rules.emit")?
                    .emit(&topic, data, None, None, &mut pushes);
                self.pushes.extend(pushes);
            }
            "rules.setFact" => {
                let key = js_string(&self.resolved(s, "key"));
                let value = self.resolved(s, "value");
                let mut pushes = Vec::new();
                self.rules("rules.setFact")?
                    .set_fact(&key, value, &mut pushes);
                self.pushes.extend(pushes);
            }
            "rules.getFact" => {
                let key = js_string(&self.resolved(s, "key"));
                let v = self.rules("rules.getFact")?.get_fact(&key);
                self.set(s, v);
            }
            "if" => {
                let branch = if self.condition_holds(s) {
                    s.get("then")
                } else {
                    s.get("else")
                };
                if let Some(Value::Array(steps)) = branch {
                    self.run(steps)?;
                }
            }
            "transform" => {
                let v = reshape::transform(s, &self.scope)?;
                self.set(s, v);
            }
            "return" => self.returned = Some(self.resolved(s, "value")),
            _ => {}
        }
        Ok(())
    }

    /// `store.get/where/findOne/insert/update/delete/count`.
    fn store_step(&mut self, action: &str, s: &Map<String, Value>) -> Result<(), OpError> {
        let bucket = s.get("bucket").and_then(Value::as_str).unwrap_or("");
        let v = match action {
            "store.get" => {
                let key = self.resolved(s, "key");
                self.store.get(bucket, &key)
            }
            "store.where" => {
                let f = self.obj_of(s, "filter");
                self.store.where_(bucket, &f)
            }
            "store.findOne" => {
                let f = self.obj_of(s, "filter");
                self.store.find_one(bucket, &f)
            }
            "store.insert" => {
                let d = self.obj_of(s, "data");
                self.store.insert(bucket, &d)
            }
            "store.update" => {
                let key = self.resolved(s, "key");
                let d = self.obj_of(s, "data");
                self.store.update(bucket, &key, &d)
            }
            "store.delete" => {
                let key = self.resolved(s, "key");
                self.store.delete(bucket, &key).map_err(map_store_err)?;
                return Ok(());
            }
            "store.count" => {
                let f = s.get("filter").map(|_| self.obj_of(s, "filter"));
                self.store.count(bucket, f.as_ref())
            }
            _ => return Ok(()),
        };
        let v = v.map_err(map_store_err)?;
        self.set(s, v);
        Ok(())
    }

    /// An `if` step's condition: the value at `ref` against the resolved `value`.
    fn condition_holds(&self, s: &Map<String, Value>) -> bool {
        let cond = s.get("condition");
        let field = |f: &str| cond.and_then(|c| c.get(f));
        let actual = field("ref")
            .and_then(Value::as_str)
            .and_then(|r| self.scope.resolve_ref(r));
        let expected = field("value").map(|v| self.scope.resolve(v));
        let operator = field("operator").and_then(Value::as_str).unwrap_or("");
        PROCEDURES.holds(operator, actual.as_ref(), expected.as_ref())
    }
}

/// Store errors inside procedures are mapped as the real procedures proxy maps them:
/// validation errors keep their code (without details), anything else is internal.
fn map_store_err(e: OpError) -> OpError {
    match e.code {
        "VALIDATION_ERROR" => OpError::validation(e.message),
        _ => OpError::internal(e.message),
    }
}

//! Server-side procedures: registry, validation and execution of every step action the
//! real server has (`store.get/where/findOne/insert/update/delete/count`, `aggregate`,
//! `rules.emit/setFact/getFact`, `if`, `transform`, `return`), with `{{ ref }}` templates.
//! Procedure timeouts are not enforced (steps run synchronously in memory).

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::condition_operators::PROCEDURES;
use crate::error::{OpError, OpResult};
use crate::json::{obj, strict_eq};
use crate::rules::{EventPush, Rules};
use crate::store::Store;

/// A JSON object.
type Object = Map<String, Value>;

const MAX_STEPS: usize = 100;
const MAX_DEPTH: usize = 5;
const ACTIONS: &[&str] = &[
    "store.get",
    "store.where",
    "store.findOne",
    "store.insert",
    "store.update",
    "store.delete",
    "store.count",
    "aggregate",
    "rules.emit",
    "rules.setFact",
    "rules.getFact",
    "if",
    "transform",
    "return",
];

/// Registered procedures, in registration order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Procedures {
    procs: IndexMap<String, Map<String, Value>>,
}

fn validation_failed(issues: Vec<String>) -> OpError {
    OpError::validation(format!(
        "Procedure validation failed: {}",
        issues.join("; ")
    ))
    .with_details(obj([(
        "issues",
        Value::Array(issues.into_iter().map(Value::from).collect()),
    )]))
}

fn req_str(s: &Map<String, Value>, f: &str, path: &str, issues: &mut Vec<String>) {
    if !matches!(s.get(f), Some(Value::String(x)) if !x.is_empty()) {
        issues.push(format!("{path}.{f}: expected non-empty string"));
    }
}

fn req_obj(s: &Map<String, Value>, f: &str, path: &str, issues: &mut Vec<String>) {
    if !matches!(s.get(f), Some(Value::Object(_))) {
        issues.push(format!("{path}.{f}: expected object"));
    }
}

fn count_steps(steps: &[Value]) -> usize {
    steps
        .iter()
        .map(|s| {
            let mut n = 1;
            if s.get("action").and_then(Value::as_str) == Some("if") {
                for b in ["then", "else"] {
                    if let Some(Value::Array(a)) = s.get(b) {
                        n += count_steps(a);
                    }
                }
            }
            n
        })
        .sum()
}

fn validate_steps(steps: &[Value], prefix: &str, depth: usize, issues: &mut Vec<String>) {
    for (i, step) in steps.iter().enumerate() {
        let path = format!("{prefix}[{i}]");
        let Value::Object(s) = step else {
            issues.push(format!("{path}: expected step object"));
            continue;
        };
        let action = s.get("action").and_then(Value::as_str).unwrap_or("");
        if !ACTIONS.contains(&action) {
            issues.push(format!(
                "{path}.action: expected one of: {}",
                ACTIONS.join(", ")
            ));
            continue;
        }
        match action {
            "store.get" => {
                req_str(s, "bucket", &path, issues);
                req_str(s, "key", &path, issues);
                req_str(s, "as", &path, issues);
            }
            "store.where" | "store.findOne" => {
                req_str(s, "bucket", &path, issues);
                req_obj(s, "filter", &path, issues);
                req_str(s, "as", &path, issues);
            }
            "store.insert" => {
                req_str(s, "bucket", &path, issues);
                req_obj(s, "data", &path, issues);
                if s.contains_key("as") {
                    req_str(s, "as", &path, issues);
                }
            }
            "store.update" => {
                req_str(s, "bucket", &path, issues);
                req_str(s, "key", &path, issues);
                req_obj(s, "data", &path, issues);
                if s.contains_key("as") {
                    req_str(s, "as", &path, issues);
                }
            }
            "store.delete" => {
                req_str(s, "bucket", &path, issues);
                req_str(s, "key", &path, issues);
            }
            "store.count" => {
                req_str(s, "bucket", &path, issues);
                if s.contains_key("filter") {
                    req_obj(s, "filter", &path, issues);
                }
                req_str(s, "as", &path, issues);
            }
            "aggregate" => {
                req_str(s, "source", &path, issues);
                req_str(s, "as", &path, issues);
                let op = s.get("op").and_then(Value::as_str).unwrap_or("");
                if !["sum", "avg", "min", "max", "count"].contains(&op) {
                    issues.push(format!(
                        "{path}.op: expected one of: sum, avg, min, max, count"
                    ));
                }
                if op != "count" {
                    req_str(s, "field", &path, issues);
                }
            }
            "rules.emit" => {
                req_str(s, "topic", &path, issues);
                if s.contains_key("data") {
                    req_obj(s, "data", &path, issues);
                }
            }
            "rules.setFact" => {
                req_str(s, "key", &path, issues);
                if !s.contains_key("value") {
                    issues.push(format!("{path}.value: required"));
                }
            }
            "rules.getFact" => {
                req_str(s, "key", &path, issues);
                req_str(s, "as", &path, issues);
            }
            "if" => {
                if depth >= MAX_DEPTH {
                    issues.push(format!(
                        "{path}: condition nesting depth exceeds maximum ({MAX_DEPTH})"
                    ));
                    continue;
                }
                match s.get("condition") {
                    Some(Value::Object(c)) => {
                        if !matches!(c.get("ref"), Some(Value::String(r)) if !r.is_empty()) {
                            issues.push(format!("{path}.condition.ref: expected non-empty string"));
                        }
                        let op = c.get("operator").and_then(Value::as_str).unwrap_or("");
                        if PROCEDURES.operator(op).is_none() {
                            issues.push(format!(
                                "{path}.condition.operator: expected one of: {}",
                                PROCEDURES.names()
                            ));
                        }
                    }
                    _ => issues.push(format!("{path}.condition: expected object")),
                }
                match s.get("then") {
                    Some(Value::Array(a)) if !a.is_empty() => {
                        validate_steps(a, &format!("{path}.then"), depth + 1, issues)
                    }
                    _ => issues.push(format!("{path}.then: expected non-empty array of steps")),
                }
                match s.get("else") {
                    None => {}
                    Some(Value::Array(a)) if !a.is_empty() => {
                        validate_steps(a, &format!("{path}.else"), depth + 1, issues)
                    }
                    _ => issues.push(format!("{path}.else: expected non-empty array of steps")),
                }
            }
            "transform" => {
                req_str(s, "source", &path, issues);
                req_str(s, "as", &path, issues);
                let op = s.get("operation").and_then(Value::as_str).unwrap_or("");
                if !["map", "filter", "pick", "pluck"].contains(&op) {
                    issues.push(format!(
                        "{path}.operation: expected one of: map, filter, pick, pluck"
                    ));
                }
                if !s.contains_key("args") {
                    issues.push(format!("{path}.args: required"));
                }
            }
            _ => {
                if !s.contains_key("value") {
                    issues.push(format!("{path}.value: required"));
                }
            }
        }
    }
}

fn validate(c: &Map<String, Value>) -> Result<(), OpError> {
    let mut issues = Vec::new();
    if !matches!(c.get("name"), Some(Value::String(n)) if !n.is_empty()) {
        issues.push("Missing or invalid \"name\": expected non-empty string".to_string());
    }
    if c.get("description").is_some_and(|d| !d.is_string()) {
        issues.push("\"description\" must be a string".into());
    }
    if let Some(input) = c.get("input") {
        match input {
            Value::Object(m) => {
                for (k, def) in m {
                    match def {
                        Value::Object(d) => {
                            let t = d.get("type").and_then(Value::as_str).unwrap_or("");
                            if !["string", "number", "boolean", "object", "array"].contains(&t) {
                                issues.push(format!("input.{k}.type: expected one of: string, number, boolean, object, array"));
                            }
                        }
                        _ => issues.push(format!("input.{k}: expected field definition object")),
                    }
                }
            }
            _ => issues.push("\"input\" must be an object".into()),
        }
    }
    if c.get("transaction").is_some_and(|t| !t.is_boolean()) {
        issues.push("\"transaction\" must be a boolean".into());
    }
    if let Some(t) = c.get("timeoutMs") {
        if !t.as_f64().is_some_and(|x| x > 0.0) {
            issues.push("\"timeoutMs\" must be a positive number".into());
        }
    }
    match c.get("steps") {
        Some(Value::Array(steps)) if steps.is_empty() => {
            issues.push("\"steps\" must contain at least one step".into())
        }
        Some(Value::Array(steps)) => {
            let total = count_steps(steps);
            if total > MAX_STEPS {
                issues.push(format!(
                    "Total step count ({total}) exceeds maximum ({MAX_STEPS})"
                ));
            }
            validate_steps(steps, "steps", 0, &mut issues);
        }
        _ => issues.push("Missing or invalid \"steps\": expected array".into()),
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(validation_failed(issues))
    }
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
    ) -> Result<(Map<String, Value>, Object), OpError> {
        let p = self.procs.get(name).ok_or_else(|| not_found(name))?;
        let mut out = input.clone();
        let mut issues = Vec::new();
        if let Some(Value::Object(schema)) = p.get("input") {
            for (key, def) in schema {
                let v = input.get(key).filter(|v| !v.is_null());
                let required = def.get("required") != Some(&Value::Bool(false));
                let Some(v) = v else {
                    if let Some(d) = def.get("default") {
                        out.insert(key.clone(), d.clone());
                    } else if required {
                        issues.push(format!("Missing required input \"{key}\""));
                    }
                    continue;
                };
                let ty = def.get("type").and_then(Value::as_str).unwrap_or("");
                let ok = match ty {
                    "string" => v.is_string(),
                    "number" => v.is_number(),
                    "boolean" => v.is_boolean(),
                    "object" => v.is_object(),
                    "array" => v.is_array(),
                    _ => true,
                };
                if !ok {
                    let got = match v {
                        Value::String(_) => "string",
                        Value::Number(_) => "number",
                        Value::Bool(_) => "boolean",
                        _ => "object",
                    };
                    issues.push(format!("Input \"{key}\": expected {ty}, got {got}"));
                }
            }
        }
        if !issues.is_empty() {
            return Err(OpError::validation(format!(
                "Invalid procedure input: {}",
                issues.join("; ")
            ))
            .with_details(obj([(
                "issues",
                Value::Array(issues.into_iter().map(Value::from).collect()),
            )])));
        }
        Ok((p.clone(), out))
    }
}

/// Execution state of one call.
pub(crate) struct Exec<'a> {
    pub(crate) store: &'a mut Store,
    pub(crate) rules: Option<&'a mut Rules>,
    pub(crate) pushes: &'a mut Vec<EventPush>,
    input: Value,
    results: IndexMap<String, Value>,
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
            input: Value::Object(input),
            results: IndexMap::new(),
            returned: None,
        }
    }

    fn resolve_ref(&self, path: &str) -> Option<Value> {
        let mut parts = path.split('.');
        let root = parts.next()?;
        let mut cur = if root == "input" {
            self.input.clone()
        } else {
            self.results.get(root)?.clone()
        };
        for p in parts {
            cur = match &cur {
                Value::Object(m) => m.get(p)?.clone(),
                Value::Array(a) if p == "length" => a.len().into(),
                Value::Array(a) => a.get(p.parse::<usize>().ok()?)?.clone(),
                Value::String(s) if p == "length" => s.encode_utf16().count().into(),
                _ => return None,
            };
        }
        Some(cur)
    }

    fn resolve(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => self.resolve_str(s),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.resolve(x)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), self.resolve(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn resolve_str(&self, s: &str) -> Value {
        let t = s;
        if let Some(inner) = t.strip_prefix("{{").and_then(|x| x.strip_suffix("}}")) {
            if !inner.contains('}') && !inner.contains("{{") {
                return self.resolve_ref(inner.trim()).unwrap_or(Value::Null);
            }
        }
        if !s.contains("{{") {
            return Value::String(s.to_string());
        }
        let mut out = String::new();
        let mut rest = s;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            match after.find("}}") {
                Some(end) if !after[..end].contains('}') => {
                    let v = self.resolve_ref(after[..end].trim());
                    match v {
                        None | Some(Value::Null) => {}
                        Some(Value::String(x)) => out.push_str(&x),
                        Some(other) => out.push_str(&other.to_string()),
                    }
                    rest = &after[end + 2..];
                }
                _ => {
                    out.push_str("{{");
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        Value::String(out)
    }

    fn obj_of(&self, step: &Map<String, Value>, f: &str) -> Map<String, Value> {
        match step.get(f).map(|v| self.resolve(v)) {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }

    fn set(&mut self, step: &Map<String, Value>, v: Value) {
        if let Some(Value::String(name)) = step.get("as") {
            self.results.insert(name.clone(), v);
        }
    }

    fn rules(&mut self, what: &str) -> Result<&mut Rules, OpError> {
        self.rules
            .as_deref_mut()
            .ok_or_else(|| OpError::internal(format!("{what}: rule engine is not configured")))
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

    fn step(&mut self, s: &Map<String, Value>) -> Result<(), OpError> {
        let bucket = s
            .get("bucket")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match s.get("action").and_then(Value::as_str).unwrap_or("") {
            "store.get" => {
                let key = self.resolve(s.get("key").unwrap_or(&Value::Null));
                let v = self.store.get(&bucket, &key).map_err(map_store_err)?;
                self.set(s, v);
            }
            "store.where" => {
                let f = self.obj_of(s, "filter");
                let v = self.store.where_(&bucket, &f).map_err(map_store_err)?;
                self.set(s, v);
            }
            "store.findOne" => {
                let f = self.obj_of(s, "filter");
                let v = self.store.find_one(&bucket, &f).map_err(map_store_err)?;
                self.set(s, v);
            }
            "store.insert" => {
                let d = self.obj_of(s, "data");
                let v = self.store.insert(&bucket, &d).map_err(map_store_err)?;
                self.set(s, v);
            }
            "store.update" => {
                let key = self.resolve(s.get("key").unwrap_or(&Value::Null));
                let d = self.obj_of(s, "data");
                let v = self
                    .store
                    .update(&bucket, &key, &d)
                    .map_err(map_store_err)?;
                self.set(s, v);
            }
            "store.delete" => {
                let key = self.resolve(s.get("key").unwrap_or(&Value::Null));
                self.store.delete(&bucket, &key).map_err(map_store_err)?;
            }
            "store.count" => {
                let f = s.get("filter").map(|_| self.obj_of(s, "filter"));
                let v = self
                    .store
                    .count(&bucket, f.as_ref())
                    .map_err(map_store_err)?;
                self.set(s, v);
            }
            "aggregate" => {
                let source = s.get("source").and_then(Value::as_str).unwrap_or("");
                let Some(Value::Array(items)) = self.results.get(source).cloned() else {
                    return Err(OpError::internal(format!(
                        "aggregate: source \"{source}\" is not an array"
                    )));
                };
                let field = s.get("field").and_then(Value::as_str).unwrap_or("");
                let nums: Vec<f64> = items
                    .iter()
                    .filter_map(|i| i.get(field).and_then(Value::as_f64))
                    .collect();
                let op = s.get("op").and_then(Value::as_str).unwrap_or("");
                let v = match op {
                    "count" => items.len().into(),
                    "sum" => crate::json::num(nums.iter().sum()),
                    "avg" if items.is_empty() => 0.into(),
                    "avg" => crate::json::num(nums.iter().sum::<f64>() / items.len() as f64),
                    "min" => nums
                        .iter()
                        .copied()
                        .reduce(f64::min)
                        .map_or(0.into(), crate::json::num),
                    _ => nums
                        .iter()
                        .copied()
                        .reduce(f64::max)
                        .map_or(0.into(), crate::json::num),
                };
                self.set(s, v);
            }
            "rules.emit" => {
                let topic = self.resolve(s.get("topic").unwrap_or(&Value::Null));
                let topic = crate::json::js_string(&topic);
                let data = Value::Object(self.obj_of(s, "data"));
                let rules = self.rules.as_deref_mut();
                match rules {
                    Some(r) => {
                        r.emit(&topic, data, None, None, self.pushes);
                    }
                    None => {
                        return Err(OpError::internal(
                            "rules.emit: rule engine is not configured",
                        ))
                    }
                }
            }
            "rules.setFact" => {
                let key =
                    crate::json::js_string(&self.resolve(s.get("key").unwrap_or(&Value::Null)));
                let value = self.resolve(s.get("value").unwrap_or(&Value::Null));
                let mut pushes = Vec::new();
                self.rules("rules.setFact")?
                    .set_fact(&key, value, &mut pushes);
                self.pushes.extend(pushes);
            }
            "rules.getFact" => {
                let key =
                    crate::json::js_string(&self.resolve(s.get("key").unwrap_or(&Value::Null)));
                let v = self.rules("rules.getFact")?.get_fact(&key);
                self.set(s, v);
            }
            "if" => {
                let cond = s.get("condition").cloned().unwrap_or(Value::Null);
                let actual = cond
                    .get("ref")
                    .and_then(Value::as_str)
                    .and_then(|r| self.resolve_ref(r));
                let expected = cond.get("value").map(|v| self.resolve(v));
                let operator = cond.get("operator").and_then(Value::as_str).unwrap_or("");
                let holds = PROCEDURES.holds(operator, actual.as_ref(), expected.as_ref());
                let branch = if holds { s.get("then") } else { s.get("else") };
                if let Some(Value::Array(steps)) = branch {
                    let steps = steps.clone();
                    self.run(&steps)?;
                }
            }
            "transform" => self.transform(s)?,
            "return" => {
                let v = self.resolve(s.get("value").unwrap_or(&Value::Null));
                self.returned = Some(v);
            }
            _ => {}
        }
        Ok(())
    }

    fn transform(&mut self, s: &Map<String, Value>) -> Result<(), OpError> {
        let source_name = s.get("source").and_then(Value::as_str).unwrap_or("");
        let source = self.results.get(source_name).cloned();
        let op = s.get("operation").and_then(Value::as_str).unwrap_or("");
        let args = s.get("args").cloned().unwrap_or(Value::Null);
        let not_array = || {
            OpError::internal(format!(
                "transform.{op}: source \"{source_name}\" is not an array"
            ))
        };
        let v = match op {
            "pluck" => {
                let Some(Value::Array(items)) = source else {
                    return Err(not_array());
                };
                let field = crate::json::js_string(&args);
                Value::Array(
                    items
                        .iter()
                        .map(|i| i.get(&field).cloned().unwrap_or(Value::Null))
                        .collect(),
                )
            }
            "pick" => {
                let Some(Value::Object(m)) = source else {
                    return Err(OpError::internal(format!(
                        "transform.pick: source \"{source_name}\" is not an object"
                    )));
                };
                let mut out = Map::new();
                for f in args.as_array().cloned().unwrap_or_default() {
                    let f = crate::json::js_string(&f);
                    if let Some(v) = m.get(&f) {
                        out.insert(f, v.clone());
                    }
                }
                Value::Object(out)
            }
            "filter" => {
                let Some(Value::Array(items)) = source else {
                    return Err(not_array());
                };
                let f = match self.resolve(&args) {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                Value::Array(
                    items
                        .into_iter()
                        .filter(|i| match i {
                            Value::Object(r) => f.iter().all(|(k, v)| strict_eq(r.get(k), Some(v))),
                            _ => false,
                        })
                        .collect(),
                )
            }
            _ => {
                let Some(Value::Array(items)) = source else {
                    return Err(not_array());
                };
                let patch = match self.resolve(&args) {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                Value::Array(
                    items
                        .into_iter()
                        .map(|i| match i {
                            Value::Object(mut r) => {
                                r.extend(patch.clone());
                                Value::Object(r)
                            }
                            other => other,
                        })
                        .collect(),
                )
            }
        };
        self.set(s, v);
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
            Value::Object(self.results.into_iter().collect()),
        );
        Value::Object(m)
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

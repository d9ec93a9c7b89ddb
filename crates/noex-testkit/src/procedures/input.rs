//! A call's input checked against the procedure's `input` schema (noex-server
//! `ProcedureEngine.#validateInput`): a missing or null field takes its `default`, or is
//! an issue when required (fields are required unless `required: false`); a present one
//! must have the declared type. All issues come in one `VALIDATION_ERROR`.

use serde_json::{Map, Value};

use crate::error::OpError;
use crate::json::obj;

/// The input the steps see: `input` with the schema's defaults filled in.
pub(super) fn complete(
    procedure: &Map<String, Value>,
    input: &Map<String, Value>,
) -> Result<Map<String, Value>, OpError> {
    let mut out = input.clone();
    let mut issues = Vec::new();
    if let Some(Value::Object(schema)) = procedure.get("input") {
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
        return Err(
            OpError::validation(format!("Invalid procedure input: {}", issues.join("; ")))
                .with_details(obj([(
                    "issues",
                    Value::Array(issues.into_iter().map(Value::from).collect()),
                )])),
        );
    }
    Ok(out)
}

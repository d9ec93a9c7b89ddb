//! Server-side procedures (`procedures.*`).

use super::checked;
use crate::client::Client;
use crate::error::Result;
use noex_proto::ops::{self, Operation};
use noex_proto::RequestOptions;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The procedures domain: `client.procedures()`.
#[derive(Debug, Clone)]
pub struct Procedures {
    client: Client,
}

/// A procedure's summary (`procedures.list`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ProcedureInfo {
    /// The procedure's name.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: Option<String>,
    /// How many steps it has.
    #[serde(default)]
    pub steps_count: u64,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A procedure's definition (`procedures.get`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Procedure {
    /// The procedure's name.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: Option<String>,
    /// Its input fields: name → `{type, required, …}`.
    #[serde(default)]
    pub input: Map<String, Value>,
    /// Its steps (`{action, …}`).
    #[serde(default)]
    pub steps: Vec<Value>,
    /// Its time limit, ms, when set.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Fields this version does not know (`transaction`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The answer of `procedures.call`. `T` is the type of the returned value
/// ([`Procedures::call_as`]); untyped by default.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(bound(deserialize = "T: DeserializeOwned"))]
#[non_exhaustive]
pub struct ProcedureResult<T = Value> {
    /// Whether it ran to the end.
    #[serde(default)]
    pub success: bool,
    /// What its `return` step returned, if it has one.
    #[serde(default = "none")]
    pub result: Option<T>,
    /// The named results of its steps (`as`).
    #[serde(default)]
    pub results: Map<String, Value>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn none<T>() -> Option<T> {
    None
}

#[derive(Deserialize)]
struct List {
    procedures: Vec<ProcedureInfo>,
}

impl Client {
    /// Server-side procedures.
    pub fn procedures(&self) -> Procedures {
        Procedures::new(self.clone())
    }
}

impl Procedures {
    pub(crate) fn new(client: Client) -> Procedures {
        Procedures { client }
    }

    async fn call_op<T: DeserializeOwned>(&self, op: Operation) -> Result<T> {
        self.client
            .call(checked(op)?, RequestOptions::default())
            .await
    }

    async fn ack(&self, op: Operation) -> Result<()> {
        let _: IgnoredAny = self.call_op(op).await?;
        Ok(())
    }

    /// Registers a procedure (`name`, `description`, `input`, `steps`, …).
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn register(&self, procedure: impl Serialize) -> Result<()> {
        self.ack(ops::procedures::register(procedure)).await
    }
    /// Removes a procedure.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn unregister(&self, name: &str) -> Result<()> {
        self.ack(ops::procedures::unregister(name)).await
    }
    /// Changes a procedure.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn update(&self, name: &str, updates: impl Serialize) -> Result<()> {
        self.ack(ops::procedures::update(name, updates)).await
    }
    /// One procedure's definition.
    pub async fn get(&self, name: &str) -> Result<Procedure> {
        self.call_op(ops::procedures::get(name)).await
    }
    /// Every procedure (summaries).
    pub async fn list(&self) -> Result<Vec<ProcedureInfo>> {
        let list: List = self.call_op(ops::procedures::list()).await?;
        Ok(list.procedures)
    }
    /// Runs a procedure with `input`; its returned value untyped.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn call(&self, name: &str, input: impl Serialize) -> Result<ProcedureResult> {
        self.call_as(name, input).await
    }
    /// Runs a procedure, decoding its returned value as `T`.
    ///
    /// A write: never re-sent automatically (see [`Procedures::call`]).
    pub async fn call_as<T: DeserializeOwned>(
        &self,
        name: &str,
        input: impl Serialize,
    ) -> Result<ProcedureResult<T>> {
        self.call_op(ops::procedures::call(name, input)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_decode_from_the_recorded_shapes() {
        let list: List = serde_json::from_value(json!({"procedures": [
            {"name": "calc-total", "description": "Sum", "stepsCount": 5}
        ]}))
        .unwrap();
        assert_eq!(list.procedures[0].steps_count, 5);
        #[derive(Deserialize)]
        struct Total {
            total: u64,
        }
        let result: ProcedureResult<Total> = serde_json::from_value(json!({
            "success": true, "result": {"total": 115}, "results": {"items": []}
        }))
        .unwrap();
        assert_eq!(result.result.unwrap().total, 115);
        let bare: ProcedureResult = serde_json::from_value(json!({"success": true})).unwrap();
        assert!(bare.result.is_none());
    }
}

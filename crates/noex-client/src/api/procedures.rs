//! Server-side procedures (`procedures.*`).

use super::{checked, to_json};
use crate::client::Client;
use crate::error::Result;
use futures::future::BoxFuture;
use futures::FutureExt;
use noex_proto::ops::{self, Operation};
use noex_proto::RequestOptions;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::future::IntoFuture;
use std::marker::PhantomData;

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
    /// What it does, when described.
    #[serde(default)]
    pub description: Option<String>,
    /// How many steps it has at its top level.
    pub steps_count: u64,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A procedure's definition (`procedures.get`): as it was registered (and updated).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Procedure {
    /// The procedure's name.
    pub name: String,
    /// What it does, when described.
    #[serde(default)]
    pub description: Option<String>,
    /// Its input fields, name → `{type, required, default}`, when it declares any.
    #[serde(default)]
    pub input: Option<Map<String, Value>>,
    /// Its steps (`{action, …}`).
    pub steps: Vec<Value>,
    /// Whether its steps run in one store transaction, when set.
    #[serde(default)]
    pub transaction: Option<bool>,
    /// Its time limit, ms, when set.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The answer of `procedures.call`. `T` is the type of the returned value (see
/// [`Procedures::call`]); untyped by default.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(bound(deserialize = "T: DeserializeOwned"))]
#[non_exhaustive]
pub struct ProcedureResult<T = Value> {
    /// Whether it ran to the end (a failed run is an error instead).
    pub success: bool,
    /// What its `return` step returned: `None` when it has none (or it returned `null`).
    #[serde(default = "none")]
    pub result: Option<T>,
    /// The named results of its steps (`as`).
    pub results: Map<String, Value>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn none<T>() -> Option<T> {
    None
}

/// The answer of `procedures.register`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ProcedureRegistered {
    /// The procedure's name.
    pub name: String,
    /// `true`.
    pub registered: bool,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The answer of `procedures.update`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ProcedureUpdated {
    /// The procedure's name.
    pub name: String,
    /// `true`.
    pub updated: bool,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The answer of `procedures.unregister` (a procedure that did not exist is `NOT_FOUND`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ProcedureUnregistered {
    /// The procedure's name.
    pub name: String,
    /// `true`.
    pub unregistered: bool,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Deserialize)]
struct List {
    procedures: Vec<ProcedureInfo>,
}

/// A procedure run about to be made ([`Procedures::call`]): give it its input, then
/// `.await` it.
///
/// A write: never re-sent automatically. When it fails and
/// [`crate::Error::may_have_been_applied`] is true, the server may have run it: look
/// before running it again. When false, nothing reached the server and retrying is safe.
#[must_use = "the procedure runs when it is awaited"]
pub struct ProcedureCallBuilder<T = Value> {
    procedures: Procedures,
    name: String,
    /// The input as JSON, or why it could not be made JSON (reported when awaited).
    input: Result<Value>,
    _type: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for ProcedureCallBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcedureCallBuilder")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<T> ProcedureCallBuilder<T> {
    /// The procedure's input: a JSON object of its input fields (default `{}`). A value
    /// that cannot be serialised fails the call when it is awaited, unsent.
    pub fn input(mut self, input: impl Serialize) -> Self {
        self.input = to_json(input);
        self
    }
}

impl<T: DeserializeOwned + Send + 'static> IntoFuture for ProcedureCallBuilder<T> {
    type Output = Result<ProcedureResult<T>>;
    type IntoFuture = BoxFuture<'static, Result<ProcedureResult<T>>>;

    fn into_future(self) -> Self::IntoFuture {
        async move {
            let op = ops::procedures::call(&self.name, self.input?);
            self.procedures.call_op(op).await
        }
        .boxed()
    }
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

    /// Registers a procedure (`name`, `description`, `input`, `steps`, …).
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn register(&self, procedure: impl Serialize) -> Result<ProcedureRegistered> {
        self.call_op(ops::procedures::register(procedure)).await
    }
    /// Removes a procedure.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn unregister(&self, name: &str) -> Result<ProcedureUnregistered> {
        self.call_op(ops::procedures::unregister(name)).await
    }
    /// Changes a procedure (the fields given replace its own).
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn update(&self, name: &str, updates: impl Serialize) -> Result<ProcedureUpdated> {
        self.call_op(ops::procedures::update(name, updates)).await
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
    /// Runs a procedure; its returned value is decoded as `T` (`serde_json::Value` when
    /// untyped, usually inferred from the binding). `.input(..)` before `.await` gives it
    /// its input (see [`ProcedureCallBuilder`]).
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have run it: look before running it again. When false,
    /// nothing reached the server and retrying is safe.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> noex_client::Result<()> {
    /// use noex_client::ProcedureResult;
    /// use serde_json::json;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Total { total: u64 }
    ///
    /// let run = client
    ///     .procedures()
    ///     .call::<Total>("calc-total")
    ///     .input(json!({"orderId": "o-1"}))
    ///     .await?;
    /// println!("total {:?}", run.result.map(|t| t.total));
    /// let untyped: ProcedureResult = client.procedures().call("cleanup").await?;
    /// # let _ = untyped;
    /// # Ok(())
    /// # }
    /// ```
    pub fn call<T: DeserializeOwned + Send + 'static>(
        &self,
        name: &str,
    ) -> ProcedureCallBuilder<T> {
        ProcedureCallBuilder {
            procedures: self.clone(),
            name: name.to_owned(),
            input: Ok(Value::Object(Map::new())),
            _type: PhantomData,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_decode_from_the_recorded_shapes() {
        let list: List = serde_json::from_value(json!({"procedures": [
            {"name": "calc-total", "description": "Sum", "stepsCount": 5},
            {"name": "bare", "stepsCount": 1}
        ]}))
        .unwrap();
        assert_eq!(list.procedures[0].steps_count, 5);
        assert!(list.procedures[1].description.is_none());
        #[derive(Deserialize)]
        struct Total {
            total: u64,
        }
        let result: ProcedureResult<Total> = serde_json::from_value(json!({
            "success": true, "result": {"total": 115}, "results": {"items": []}
        }))
        .unwrap();
        assert_eq!(result.result.unwrap().total, 115);
        let bare: ProcedureResult =
            serde_json::from_value(json!({"success": true, "results": {"n": 0}})).unwrap();
        assert!(bare.result.is_none());
        let procedure: Procedure = serde_json::from_value(json!({
            "name": "calc-total", "description": "v2",
            "input": {"orderId": {"type": "string", "required": true}},
            "steps": [{"action": "store.where", "bucket": "items", "filter": {}, "as": "items"}],
            "transaction": true, "timeoutMs": 500
        }))
        .unwrap();
        assert_eq!(
            (procedure.transaction, procedure.timeout_ms),
            (Some(true), Some(500))
        );
        let registered: ProcedureRegistered =
            serde_json::from_value(json!({"name": "calc-total", "registered": true})).unwrap();
        assert_eq!(registered.name, "calc-total");
        let updated: ProcedureUpdated =
            serde_json::from_value(json!({"name": "calc-total", "updated": true})).unwrap();
        assert!(updated.updated);
        let gone: ProcedureUnregistered =
            serde_json::from_value(json!({"name": "calc-total", "unregistered": true})).unwrap();
        assert!(gone.unregistered);
    }

    #[test]
    fn fields_the_server_always_sends_are_required() {
        assert!(serde_json::from_value::<ProcedureInfo>(json!({"name": "x"})).is_err());
        assert!(serde_json::from_value::<ProcedureResult>(json!({"success": true})).is_err());
        assert!(serde_json::from_value::<ProcedureResult>(json!({"results": {}})).is_err());
        assert!(serde_json::from_value::<Procedure>(json!({"name": "x"})).is_err());
        assert!(serde_json::from_value::<ProcedureRegistered>(json!({"name": "x"})).is_err());
    }
}

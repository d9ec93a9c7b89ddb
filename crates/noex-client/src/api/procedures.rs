//! Server-side procedures (`procedures.*`).

use super::to_json;
use crate::client::Client;
use crate::error::Result;
use noex_proto::{ops, Operation, RequestOptions};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The procedures domain: `client.procedures()`.
#[derive(Debug, Clone)]
pub struct Procedures {
    client: Client,
}

#[derive(Deserialize)]
struct List {
    procedures: Vec<Value>,
}

impl Procedures {
    pub(crate) fn new(client: Client) -> Procedures {
        Procedures { client }
    }

    async fn call_op<T: DeserializeOwned>(&self, op: Operation) -> Result<T> {
        self.client.call(op, RequestOptions::default()).await
    }

    /// Registers a procedure (`name`, `description`, `input`, `steps`, …).
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn register(&self, procedure: &(impl Serialize + ?Sized)) -> Result<Value> {
        self.call_op(ops::procedures::register(&to_json(procedure)?))
            .await
    }
    /// Removes a procedure.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn unregister(&self, name: &str) -> Result<Value> {
        self.call_op(ops::procedures::unregister(name)).await
    }
    /// Changes a procedure.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn update(&self, name: &str, updates: &(impl Serialize + ?Sized)) -> Result<Value> {
        self.call_op(ops::procedures::update(name, &to_json(updates)?))
            .await
    }
    /// One procedure's definition.
    pub async fn get(&self, name: &str) -> Result<Value> {
        self.call_op(ops::procedures::get(name)).await
    }
    /// Every procedure (summaries).
    pub async fn list(&self) -> Result<Vec<Value>> {
        let list: List = self.call_op(ops::procedures::list()).await?;
        Ok(list.procedures)
    }
    /// Runs a procedure: `{success, result, …}`.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn call(&self, name: &str, input: &(impl Serialize + ?Sized)) -> Result<Value> {
        self.call_op(ops::procedures::call(name, &to_json(input)?))
            .await
    }
}

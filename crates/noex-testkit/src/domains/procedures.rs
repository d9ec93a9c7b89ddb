//! `procedures.*`: the procedure registry and calls.

use serde_json::Value;

use super::{req_obj, req_str};
use crate::error::OpResult;
use crate::procedures::Exec;
use crate::state::{Core, Req};

pub(crate) fn register(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    c.procedures.register(&req_obj(r.body, "procedure")?)
}

pub(crate) fn unregister(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    c.procedures.unregister(&req_str(r.body, "name")?)
}

pub(crate) fn update(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let name = req_str(r.body, "name")?;
    c.procedures.update(&name, &req_obj(r.body, "updates")?)
}

pub(crate) fn get(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    c.procedures.get(&req_str(r.body, "name")?)
}

pub(crate) fn list(c: &mut Core, _r: &mut Req<'_>) -> OpResult {
    Ok(c.procedures.list())
}

pub(crate) fn call(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let name = req_str(r.body, "name")?;
    let input = r
        .body
        .get("input")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let (proc_cfg, input) = c.procedures.prepare_call(&name, &input)?;
    let steps = proc_cfg
        .get("steps")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let tx = proc_cfg.get("transaction") == Some(&Value::Bool(true));
    let backup = tx.then(|| (c.store.buckets.clone(), c.rules.clone()));
    // The real server races the execution against a `timeoutMs` timer, but its steps are
    // in-memory store and rule calls that settle in microtasks, before any timer can fire:
    // a call never times out there (observed: 100 steps with `timeoutMs: 1` succeed).
    // The steps here are synchronous, so the same holds: the timeout is validated and
    // otherwise has no effect.
    let mut pushes = Vec::new();
    let outcome = {
        let mut exec = Exec::new(&mut c.store, c.rules.as_mut(), &mut pushes, input);
        exec.run(&steps).map(|()| exec.finish())
    };
    settle(c, r, outcome, pushes, backup)
}

type Backup = Option<(
    indexmap::IndexMap<String, crate::store::Bucket>,
    Option<crate::rules::Rules>,
)>;

/// Keep or roll back the effects of a finished call.
fn settle(
    c: &mut Core,
    r: &mut Req<'_>,
    outcome: OpResult,
    pushes: Vec<crate::rules::EventPush>,
    backup: Backup,
) -> OpResult {
    match outcome {
        Ok(v) => {
            r.early.extend(pushes);
            Ok(v)
        }
        Err(e) => {
            if let Some((buckets, rules)) = backup {
                c.store.buckets = buckets;
                c.rules = rules;
            } else {
                r.early.extend(pushes);
            }
            Err(e)
        }
    }
}

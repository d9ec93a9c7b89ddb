//! `rules.*`: events, facts, subscriptions and the rule registry.

use serde_json::{Map, Value};

use super::{req_obj, req_str};
use crate::error::{OpError, OpResult};
use crate::json::obj;
use crate::rules::Rules;
use crate::state::{Core, Req};

fn not_available() -> OpError {
    OpError::new("RULES_NOT_AVAILABLE", "Rule engine is not configured")
}

/// Runs before every `rules.*` operation: the rule engine must be on.
pub(crate) fn guard(c: &mut Core, _r: &Req<'_>) -> Result<(), OpError> {
    if c.rules.is_none() {
        return Err(not_available());
    }
    Ok(())
}

fn engine(c: &mut Core) -> Result<&mut Rules, OpError> {
    c.rules.as_mut().ok_or_else(not_available)
}

pub(crate) fn subscribe(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    c.check_sub_limit(r.conn)?;
    let pattern = req_str(r.body, "pattern")?;
    let id = c.next_sub_id();
    engine(c)?.subscribe(r.conn, id.clone(), pattern);
    Ok(obj([("subscriptionId", id.into())]))
}

pub(crate) fn unsubscribe(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let rules = engine(c)?;
    let id = req_str(r.body, "subscriptionId")?;
    if !rules.unsubscribe(r.conn, &id) {
        return Err(OpError::not_found(format!(
            "Subscription \"{id}\" not found"
        )));
    }
    Ok(obj([("unsubscribed", true.into())]))
}

pub(crate) fn emit(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let rules = engine(c)?;
    let body = r.body;
    let topic = req_str(body, "topic")?;
    let data = match body.get("data") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(d @ Value::Object(_)) => d.clone(),
        Some(_) => return Err(OpError::validation("Invalid \"data\": expected object")),
    };
    let corr = match body.get("correlationId") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) if !c.is_empty() => Some(c.clone()),
        Some(_) => {
            return Err(OpError::validation(
                "Invalid \"correlationId\": expected non-empty string",
            ))
        }
    };
    let causation = corr.as_ref().and_then(|_| {
        body.get("causationId")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    Ok(rules.emit(&topic, data, corr, causation, r.early))
}

pub(crate) fn set_fact(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let rules = engine(c)?;
    let key = req_str(r.body, "key")?;
    let Some(value) = r.body.get("value") else {
        return Err(OpError::validation("Missing \"value\": expected a value"));
    };
    Ok(rules.set_fact(&key, value.clone(), r.early))
}

pub(crate) fn get_fact(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let rules = engine(c)?;
    Ok(rules.get_fact(&req_str(r.body, "key")?))
}

pub(crate) fn delete_fact(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let rules = engine(c)?;
    Ok(obj([(
        "deleted",
        rules.delete_fact(&req_str(r.body, "key")?).into(),
    )]))
}

pub(crate) fn query_facts(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let rules = engine(c)?;
    Ok(rules.query_facts(&req_str(r.body, "pattern")?))
}

pub(crate) fn get_all_facts(c: &mut Core, _r: &mut Req<'_>) -> OpResult {
    Ok(engine(c)?.all_facts())
}

pub(crate) fn stats(c: &mut Core, _r: &mut Req<'_>) -> OpResult {
    Ok(engine(c)?.stats())
}

pub(crate) fn register_rule(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let rules = engine(c)?;
    rules.register(&req_obj(r.body, "rule")?)
}

pub(crate) fn unregister_rule(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let rules = engine(c)?;
    let id = req_str(r.body, "ruleId")?;
    if !rules.unregister(&id) {
        return Err(OpError::not_found(format!("Rule \"{id}\" not found")));
    }
    Ok(obj([("ruleId", id.into()), ("unregistered", true.into())]))
}

pub(crate) fn update_rule(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let rules = engine(c)?;
    let id = req_str(r.body, "ruleId")?;
    let updates = req_obj(r.body, "updates")?;
    rules.update(&id, &updates)
}

/// `rules.enableRule` and `rules.disableRule`.
pub(crate) fn set_enabled(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let rules = engine(c)?;
    let id = req_str(r.body, "ruleId")?;
    let enabled = r.ty == "rules.enableRule";
    if !rules.set_enabled(&id, enabled) {
        return Err(OpError::not_found(format!("Rule \"{id}\" not found")));
    }
    Ok(obj([("ruleId", id.into()), ("enabled", enabled.into())]))
}

pub(crate) fn get_rule(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let rules = engine(c)?;
    rules.get_rule(&req_str(r.body, "ruleId")?)
}

pub(crate) fn get_rules(c: &mut Core, _r: &mut Req<'_>) -> OpResult {
    Ok(engine(c)?.list_rules())
}

pub(crate) fn validate_rule(_c: &mut Core, r: &mut Req<'_>) -> OpResult {
    Ok(Rules::validate(&req_obj(r.body, "rule")?))
}

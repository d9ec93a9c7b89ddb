//! `server.*`: statistics and the connection list.

use serde_json::Value;

use crate::error::OpResult;
use crate::json::obj;
use crate::rules::Rules;
use crate::state::{Core, Req};

pub(crate) fn stats(c: &mut Core, _r: &mut Req<'_>) -> OpResult {
    let conns = c.connections_info();
    let authenticated = c.conns.values().filter(|c| c.session.is_some()).count();
    let store_subs = c.store.subs.len();
    let rules_subs = c.rules.as_ref().map_or(0, |r| r.subs().len());
    Ok(obj([
        ("name", c.cfg.name.clone().into()),
        ("connectionCount", conns.len().into()),
        ("authEnabled", c.auth_configured().into()),
        ("rateLimitEnabled", c.cfg.rate_limit.is_some().into()),
        ("rulesEnabled", c.rules.is_some().into()),
        (
            "connections",
            obj([
                ("active", conns.len().into()),
                ("authenticated", authenticated.into()),
                ("totalStoreSubscriptions", store_subs.into()),
                ("totalRulesSubscriptions", rules_subs.into()),
            ]),
        ),
        ("store", c.store.stats()),
        ("rules", c.rules.as_ref().map_or(Value::Null, Rules::stats)),
    ]))
}

pub(crate) fn connections(c: &mut Core, _r: &mut Req<'_>) -> OpResult {
    Ok(Value::Array(c.connections_info()))
}

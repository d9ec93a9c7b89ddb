//! `noex call` (any operation by its wire name) and `noex ops` (the catalogue).

use std::io::Write;

use noex_tokio::proto::ops::{AnswerShape, OpKind};
use serde_json::{Map, Value};

use crate::client_args::{CallArgs, ConnArgs, OpsArgs, OutputArgs};
use crate::connect::execute;
use crate::exit::Failure;
use crate::input::call_fields;
use crate::output::{print_value, Format};

/// Every operation's wire name, in catalogue order.
pub(crate) fn op_names() -> Vec<&'static str> {
    OpKind::ALL.iter().map(|k| k.name()).collect()
}

/// Looks an operation up by its wire name; unknown names get a list of close ones.
pub(crate) fn lookup(name: &str) -> Result<OpKind, Failure> {
    if let Some(kind) = OpKind::from_name(name) {
        return Ok(kind);
    }
    let close = suggestions(name);
    let mut message = format!("unknown operation `{name}`");
    if !close.is_empty() {
        message.push_str(&format!("\ndid you mean: {}?", close.join(", ")));
    }
    message.push_str("\nrun `noex ops` for the list of operations");
    Err(Failure::Usage(message))
}

/// Up to five operation names close to `name`: the same name in another case, the same
/// operation in another domain (`insert` → `store.insert`), small edit distances, names
/// containing it.
fn suggestions(name: &str) -> Vec<&'static str> {
    let wanted = name.to_ascii_lowercase();
    let wanted_op = wanted.rsplit('.').next().unwrap_or(&wanted).to_string();
    let limit = (wanted.chars().count() / 4).max(2);
    let mut scored: Vec<(usize, &'static str)> = OpKind::ALL
        .iter()
        .filter_map(|k| {
            let full = k.name();
            let lower = full.to_ascii_lowercase();
            let op = lower.rsplit('.').next().unwrap_or(&lower);
            let distance = strsim::levenshtein(&wanted, &lower);
            let score = if lower == wanted {
                0
            } else if op == wanted_op && !wanted_op.is_empty() {
                1
            } else if distance <= limit {
                1 + distance
            } else if wanted.len() >= 3 && lower.contains(&wanted) {
                limit + 2
            } else if wanted_op.len() >= 3 && strsim::levenshtein(&wanted_op, op) <= 2 {
                limit + 3 + strsim::levenshtein(&wanted_op, op)
            } else {
                return None;
            };
            Some((score, full))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(5).map(|(_, n)| n).collect()
}

/// `noex call`.
pub(crate) fn run(args: &CallArgs) -> Result<(), Failure> {
    let kind = lookup(&args.op)?;
    let fields = call_fields(&args.fields)?;
    request_and_print(&args.conn, &args.out, kind, &fields, None)
}

/// Sends one operation and prints its answer.
pub(crate) fn request_and_print(
    conn: &ConnArgs,
    out: &OutputArgs,
    kind: OpKind,
    fields: &Map<String, Value>,
    fallback: Option<OpKind>,
) -> Result<(), Failure> {
    let format = Format::resolve(out);
    let answer = execute(conn, kind, fields, fallback)?;
    print_value(answer.json(), format);
    Ok(())
}

fn shape_name(shape: AnswerShape) -> &'static str {
    match shape {
        AnswerShape::Record => "record",
        AnswerShape::OptionalRecord => "record|null",
        AnswerShape::Records => "[record]",
        AnswerShape::Number => "number",
        AnswerShape::OptionalNumber => "number|null",
        AnswerShape::Page => "page",
        AnswerShape::Object => "object",
        AnswerShape::List => "[object]",
        AnswerShape::Any => "any",
    }
}

/// One line of `noex ops` as JSON.
#[derive(Debug, serde::Serialize)]
struct OpLine {
    name: &'static str,
    access: &'static str,
    answer: &'static str,
    secret: bool,
}

/// `noex ops`: a table on a terminal, one JSON object per line otherwise.
pub(crate) fn list(args: &OpsArgs) -> Result<(), Failure> {
    let format = Format::resolve(&args.out);
    let width = op_names().iter().map(|n| n.len()).max().unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for kind in OpKind::ALL {
        let access = if kind.is_read() { "read" } else { "write" };
        let line = if format.human() {
            let secret = if kind.carries_secret() {
                "  (carries a secret)"
            } else {
                ""
            };
            format!(
                "{:width$}  {access:5}  {}{secret}",
                kind.name(),
                shape_name(kind.answer())
            )
        } else {
            serde_json::to_string(&OpLine {
                name: kind.name(),
                access,
                answer: shape_name(kind.answer()),
                secret: kind.carries_secret(),
            })
            .unwrap_or_default()
        };
        if writeln!(out, "{line}").is_err() {
            break;
        }
    }
    let _ = out.flush();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_and_suggests() {
        assert_eq!(lookup("store.insert").unwrap(), OpKind::StoreInsert);
        let message = |n: &str| match lookup(n) {
            Err(Failure::Usage(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(message("store.inser").contains("did you mean: store.insert"));
        assert!(message("insert").contains("store.insert"));
        assert!(message("Store.Insert").contains("store.insert"));
        assert!(message("rules.setfact").contains("rules.setFact"));
        assert!(message("zzz").contains("noex ops"));
        assert!(!message("zzz").contains("did you mean"));
        assert!(message("").contains("unknown operation"));
    }
}

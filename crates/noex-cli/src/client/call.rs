//! `noex call` (any operation by its wire name) and `noex ops` (the catalogue).

use std::io::Write;

use noex_tokio::proto::ops::{AnswerShape, OpField, OpKind};
use serde_json::{Map, Value};

use crate::client::args::{CallArgs, ConnArgs, OpsArgs, OutputArgs};
use crate::client::connect::execute;
use crate::client::failure::Failure;
use crate::client::input::call_fields;
use crate::client::output::{print_value, Format};

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
    fields: Vec<FieldLine>,
}

/// One request field in [`OpLine`].
#[derive(Debug, serde::Serialize)]
struct FieldLine {
    name: &'static str,
    required: bool,
    #[serde(rename = "type")]
    ty: &'static str,
}

fn access(kind: OpKind) -> &'static str {
    if kind.is_read() {
        "read"
    } else {
        "write"
    }
}

fn op_line(kind: OpKind) -> OpLine {
    OpLine {
        name: kind.name(),
        access: access(kind),
        answer: shape_name(kind.answer()),
        secret: kind.carries_secret(),
        fields: kind
            .fields()
            .iter()
            .map(|f| FieldLine {
                name: f.name,
                required: f.required,
                ty: f.ty.name(),
            })
            .collect(),
    }
}

/// A field as the table shows it: `bucket`, or `filter?` when optional.
fn field_label(f: &OpField) -> String {
    if f.required {
        f.name.to_string()
    } else {
        format!("{}?", f.name)
    }
}

/// One row of the `noex ops` table: name, access, answer shape, fields (optional ones
/// marked `?`), and whether the request carries a secret.
fn table_row(kind: OpKind, name_width: usize, answer_width: usize) -> String {
    let fields: Vec<String> = kind.fields().iter().map(field_label).collect();
    let secret = if kind.carries_secret() {
        "  (carries a secret)"
    } else {
        ""
    };
    let row = format!(
        "{:name_width$}  {:5}  {:answer_width$}  {}{secret}",
        kind.name(),
        access(kind),
        shape_name(kind.answer()),
        fields.join(", ")
    );
    row.trim_end().to_string()
}

/// `noex ops OP` on a terminal: the operation and each of its fields on its own line.
fn detail_lines(kind: OpKind) -> Vec<String> {
    let mut lines = vec![
        kind.name().to_string(),
        format!("  access  {}", access(kind)),
        format!("  answer  {}", shape_name(kind.answer())),
    ];
    if kind.carries_secret() {
        lines.push("  secret  yes: a token or a password, never logged".to_string());
    }
    let fields = kind.fields();
    if fields.is_empty() {
        lines.push("  fields  none".to_string());
    }
    let width = fields.iter().map(|f| f.name.len()).max().unwrap_or(0);
    let type_width = fields.iter().map(|f| f.ty.name().len()).max().unwrap_or(0);
    for (i, f) in fields.iter().enumerate() {
        let label = if i == 0 { "fields" } else { "" };
        let required = if f.required { "required" } else { "optional" };
        lines.push(format!(
            "  {label:6}  {:width$}  {:type_width$}  {required}",
            f.name,
            f.ty.name()
        ));
    }
    let example: Vec<String> = fields
        .iter()
        .map(|f| {
            let pair = format!("{}=<{}>", f.name, f.ty.name());
            if f.required {
                pair
            } else {
                format!("[{pair}]")
            }
        })
        .collect();
    let call = format!("  call    noex call {} {}", kind.name(), example.join(" "));
    lines.push(call.trim_end().to_string());
    lines
}

/// `noex ops`: a table on a terminal, one JSON object per line otherwise; `noex ops OP`:
/// that operation only, in detail on a terminal.
pub(crate) fn list(args: &OpsArgs) -> Result<(), Failure> {
    let format = Format::resolve(&args.out);
    let lines: Vec<String> = match &args.op {
        Some(name) => {
            let kind = lookup(name)?;
            if format.human() {
                detail_lines(kind)
            } else {
                vec![serde_json::to_string(&op_line(kind)).unwrap_or_default()]
            }
        }
        None if format.human() => {
            let name_width = op_names().iter().map(|n| n.len()).max().unwrap_or(0);
            let answer_width = OpKind::ALL
                .iter()
                .map(|k| shape_name(k.answer()).len())
                .max()
                .unwrap_or(0);
            OpKind::ALL
                .iter()
                .map(|&k| table_row(k, name_width, answer_width))
                .collect()
        }
        None => OpKind::ALL
            .iter()
            .map(|&k| serde_json::to_string(&op_line(k)).unwrap_or_default())
            .collect(),
    };
    let mut out = std::io::stdout().lock();
    for line in lines {
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

    #[test]
    fn table_rows_show_the_fields() {
        assert_eq!(
            table_row(OpKind::StoreInsert, 14, 11),
            "store.insert    write  record       bucket, data"
        );
        assert_eq!(
            table_row(OpKind::StoreCount, 14, 11),
            "store.count     read   number       bucket, filter?"
        );
        assert_eq!(
            table_row(OpKind::ServerStats, 14, 11),
            "server.stats    read   object"
        );
        assert_eq!(
            table_row(OpKind::AuthLogin, 14, 11),
            "auth.login      write  object       token  (carries a secret)"
        );
    }

    #[test]
    fn the_detail_lists_each_field() {
        assert_eq!(
            detail_lines(OpKind::StorePaginate),
            [
                "store.paginate",
                "  access  read",
                "  answer  page",
                "  fields  bucket  string   required",
                "          limit   integer  required",
                "          after   any      optional",
                "  call    noex call store.paginate bucket=<string> limit=<integer> [after=<any>]",
            ]
        );
        let login = detail_lines(OpKind::IdentityLogin);
        assert!(login.iter().any(|l| l.starts_with("  secret")), "{login:?}");
        let stats = detail_lines(OpKind::ServerStats);
        assert!(stats.contains(&"  fields  none".to_string()), "{stats:?}");
        assert_eq!(stats.last().unwrap(), "  call    noex call server.stats");
    }

    #[test]
    fn json_lines_carry_the_fields() {
        let line = serde_json::to_value(op_line(OpKind::StoreCount)).unwrap();
        assert_eq!(
            line["fields"],
            serde_json::json!([
                {"name": "bucket", "required": true, "type": "string"},
                {"name": "filter", "required": false, "type": "object"}
            ])
        );
        assert_eq!(line["access"], "read");
    }
}

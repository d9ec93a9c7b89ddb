//! Turning command-line arguments and stdin into JSON: strict JSON with clear errors
//! (where it went wrong, with a caret), and the lenient `key=value` form.

use std::io::Read;

use serde_json::{Map, Value};

use crate::client::failure::Failure;

/// Where a JSON text came from, for messages.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source<'a> {
    /// A named argument (`FILTER`, `argument 2`, ...).
    Arg(&'a str),
    /// Standard input.
    Stdin,
}

impl std::fmt::Display for Source<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Arg(name) => f.write_str(name),
            Source::Stdin => f.write_str("stdin"),
        }
    }
}

/// Reads all of standard input.
pub(crate) fn read_stdin() -> Result<String, Failure> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| Failure::Usage(format!("cannot read stdin: {e}")))?;
    Ok(text)
}

/// Parses strict JSON; the error says where, and shows the spot.
pub(crate) fn parse_json(text: &str, source: Source<'_>) -> Result<Value, Failure> {
    if text.trim().is_empty() {
        return Err(Failure::Usage(format!(
            "invalid JSON in {source}: it is empty"
        )));
    }
    serde_json::from_str(text).map_err(|e| {
        let message = e.to_string();
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(m, _)| m);
        let (line, column) = (e.line(), e.column());
        let mut out =
            format!("invalid JSON in {source} at line {line}, column {column}: {message}");
        if let Some(snippet) = caret(text, line, column) {
            out.push('\n');
            out.push_str(&snippet);
        }
        Failure::Usage(out)
    })
}

/// The offending line (at most 60 characters of it around the spot) and a caret under the
/// column.
fn caret(text: &str, line: usize, column: usize) -> Option<String> {
    let content: Vec<char> = text.lines().nth(line.checked_sub(1)?)?.chars().collect();
    // serde_json counts columns from 1 and points at the character it stopped on (0 when
    // it stopped before the first one).
    let at = column.saturating_sub(1).min(content.len());
    let start = at.saturating_sub(40);
    let end = (start + 60).min(content.len());
    let shown: String = content[start..end]
        .iter()
        .map(|c| if c.is_control() { ' ' } else { *c })
        .collect();
    let prefix = if start > 0 { "…" } else { "" };
    let pad = " ".repeat(at - start + prefix.chars().count());
    Some(format!("  {prefix}{shown}\n  {pad}^"))
}

/// Parses a JSON object.
pub(crate) fn parse_object(text: &str, source: Source<'_>) -> Result<Map<String, Value>, Failure> {
    match parse_json(text, source)? {
        Value::Object(map) => Ok(map),
        other => Err(Failure::Usage(format!(
            "{source} must be a JSON object, got {}",
            kind_of(&other)
        ))),
    }
}

/// `a JSON array`, `a string`, ...
pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A lenient value: JSON when it parses as JSON, else the text as a string.
pub(crate) fn lenient(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// A JSON text from an argument, `-` meaning stdin; and whether it came from stdin.
fn arg_or_stdin(arg: &str) -> Result<(String, bool), Failure> {
    if arg == "-" {
        Ok((read_stdin()?, true))
    } else {
        Ok((arg.to_string(), false))
    }
}

/// Strict JSON from an argument or (`-`) stdin.
pub(crate) fn json_arg(arg: &str, name: &str) -> Result<Value, Failure> {
    let (text, stdin) = arg_or_stdin(arg)?;
    parse_json(
        &text,
        if stdin {
            Source::Stdin
        } else {
            Source::Arg(name)
        },
    )
}

/// A strict JSON object from an argument or (`-`) stdin.
pub(crate) fn object_arg(arg: &str, name: &str) -> Result<Map<String, Value>, Failure> {
    let (text, stdin) = arg_or_stdin(arg)?;
    parse_object(
        &text,
        if stdin {
            Source::Stdin
        } else {
            Source::Arg(name)
        },
    )
}

/// `noex call`'s fields: JSON objects, `-` (stdin) and `key=value` pairs, merged in order.
pub(crate) fn call_fields(args: &[String]) -> Result<Map<String, Value>, Failure> {
    let mut fields = Map::new();
    let mut stdin_used = false;
    for (i, arg) in args.iter().enumerate() {
        let name = format!("argument {}", i + 1);
        let part = if arg == "-" {
            if stdin_used {
                return Err(Failure::Usage("`-` (stdin) can be given once".into()));
            }
            stdin_used = true;
            parse_object(&read_stdin()?, Source::Stdin)?
        } else if arg.trim_start().starts_with('{') {
            parse_object(arg, Source::Arg(&name))?
        } else if let Some((key, value)) = arg.split_once('=').filter(|(k, _)| !k.is_empty()) {
            let mut m = Map::new();
            m.insert(key.to_string(), lenient(value));
            m
        } else {
            return Err(Failure::Usage(format!(
                "{name} `{arg}` is not a JSON object, `-` (stdin) or key=value"
            )));
        };
        fields.extend(part);
    }
    for reserved in ["id", "type"] {
        if fields.contains_key(reserved) {
            return Err(Failure::Usage(format!(
                "`{reserved}` is set by the client and cannot be a field"
            )));
        }
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn key_values_are_json_when_they_parse() {
        let f = call_fields(&args(&[
            "bucket=users",
            "n=2",
            "ok=true",
            "data={\"a\":1}",
            "empty=",
            "eq=a=b",
        ]))
        .unwrap();
        assert_eq!(
            Value::Object(f),
            json!({"bucket": "users", "n": 2, "ok": true, "data": {"a": 1}, "empty": "", "eq": "a=b"})
        );
    }

    #[test]
    fn objects_merge_and_later_wins() {
        let f = call_fields(&args(&[r#"{"bucket":"a","n":1}"#, "bucket=b"])).unwrap();
        assert_eq!(Value::Object(f), json!({"bucket": "b", "n": 1}));
    }

    #[test]
    fn bad_input_is_a_usage_error_with_position() {
        let e = call_fields(&args(&[r#"{"bucket" "users"}"#])).unwrap_err();
        let Failure::Usage(m) = e else { panic!() };
        assert!(m.contains("argument 1 at line 1, column 11"), "{m}");
        assert!(
            m.ends_with("\n  {\"bucket\" \"users\"}\n            ^"),
            "{m:?}"
        );
        assert!(call_fields(&args(&["[1]"])).is_err());
        assert!(call_fields(&args(&["plain"])).is_err());
        assert!(call_fields(&args(&["=x"])).is_err());
        assert!(call_fields(&args(&["id=1"])).is_err());
        assert!(parse_json("", Source::Stdin).is_err());
        assert!(parse_object("[1]", Source::Stdin).is_err());
    }

    #[test]
    fn carets_never_panic() {
        for text in [
            "{",
            "{\n\"a\":",
            "\u{e9}\u{e9}\u{e9}{",
            &"x".repeat(200),
            "\"\u{1}\"",
        ] {
            let _ = parse_json(text, Source::Stdin);
        }
        assert_eq!(caret("abc", 5, 1), None);
    }
}

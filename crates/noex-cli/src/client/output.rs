//! Printing answers: pretty, coloured JSON on a terminal; compact JSON, one value per line,
//! when piped or with `--json`. The server's text is reformatted as it is (key order and
//! numbers are kept exactly), never parsed into a tree.

use std::io::{IsTerminal, Write};

use anstyle::{AnsiColor, Style};

use crate::client::args::OutputArgs;

/// How values are written on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Format {
    /// Indented over several lines (otherwise one line).
    pub(crate) pretty: bool,
    /// ANSI colours.
    pub(crate) color: bool,
}

impl Format {
    /// The format for these flags, the environment (`NO_COLOR`) and whether stdout is a
    /// terminal.
    pub(crate) fn resolve(args: &OutputArgs) -> Format {
        let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Format::decide(args, std::io::stdout().is_terminal(), no_color_env)
    }

    fn decide(args: &OutputArgs, terminal: bool, no_color_env: bool) -> Format {
        let pretty = terminal && !args.json;
        Format {
            pretty,
            color: pretty && !args.no_color && !no_color_env,
        }
    }

    /// Whether the output is for a person (a table rather than JSON lines, say).
    pub(crate) fn human(self) -> bool {
        self.pretty
    }
}

const KEY: Style = AnsiColor::Blue.on_default().bold();
const STRING: Style = AnsiColor::Green.on_default();
const NUMBER: Style = AnsiColor::Cyan.on_default();
const LITERAL: Style = AnsiColor::Magenta.on_default();
const NULL: Style = AnsiColor::BrightBlack.on_default();

/// Reformats one valid JSON text. Whitespace outside strings is dropped; with `pretty`,
/// containers are indented by two spaces (empty ones stay `{}`/`[]`).
pub(crate) fn render(json: &str, format: Format) -> String {
    let mut out = String::with_capacity(json.len() + json.len() / 2);
    // One entry per open container: whether it is an object, and whether the next string
    // in it is a key.
    let mut stack: Vec<(bool, bool)> = Vec::new();
    let chars: Vec<char> = json.chars().collect();
    let mut i = 0;
    let paint = |out: &mut String, style: Style, text: &str| {
        if format.color {
            out.push_str(&format!("{}{text}{}", style.render(), style.render_reset()));
        } else {
            out.push_str(text);
        }
    };
    let newline = |out: &mut String, depth: usize| {
        if format.pretty {
            out.push('\n');
            for _ in 0..depth {
                out.push_str("  ");
            }
        }
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '{' | '[' => {
                let object = c == '{';
                let close = if object { '}' } else { ']' };
                let mut j = i + 1;
                while j < chars.len() && chars[j].is_ascii_whitespace() {
                    j += 1;
                }
                if j < chars.len() && chars[j] == close {
                    out.push(c);
                    out.push(close);
                    i = j + 1;
                } else {
                    out.push(c);
                    stack.push((object, object));
                    newline(&mut out, stack.len());
                    i += 1;
                }
            }
            '}' | ']' => {
                stack.pop();
                newline(&mut out, stack.len());
                out.push(c);
                i += 1;
            }
            ',' => {
                out.push(',');
                if let Some(top) = stack.last_mut() {
                    top.1 = top.0;
                }
                newline(&mut out, stack.len());
                i += 1;
            }
            ':' => {
                out.push(':');
                if format.pretty {
                    out.push(' ');
                }
                if let Some(top) = stack.last_mut() {
                    top.1 = false;
                }
                i += 1;
            }
            '"' => {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i = (i + 1).min(chars.len());
                let text: String = chars[start..i].iter().collect();
                let is_key = stack.last().is_some_and(|top| top.1);
                paint(&mut out, if is_key { KEY } else { STRING }, &text);
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !matches!(chars[i], ',' | '}' | ']' | ':' | ' ' | '\t' | '\n' | '\r')
                {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let style = match text.as_str() {
                    "true" | "false" => LITERAL,
                    "null" => NULL,
                    _ => NUMBER,
                };
                paint(&mut out, style, &text);
                if i == start {
                    // Not JSON after all: keep the character rather than loop.
                    out.push(chars[i]);
                    i += 1;
                }
            }
        }
    }
    out
}

/// Writes one value (a line) on stdout. A closed stdout (`| head`) is not an error.
pub(crate) fn print_value(json: &str, format: Format) {
    let text = render(json, format);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Format = Format {
        pretty: false,
        color: false,
    };
    const PRETTY: Format = Format {
        pretty: true,
        color: false,
    };

    #[test]
    fn compact_keeps_order_and_numbers() {
        let json = "{ \"b\": 1.50, \"a\" : [1, 2 ,{}], \"s\": \"x, y: {z}\\\"\" ,\"n\":null }";
        assert_eq!(
            render(json, PLAIN),
            r#"{"b":1.50,"a":[1,2,{}],"s":"x, y: {z}\"","n":null}"#
        );
    }

    #[test]
    fn pretty_indents() {
        assert_eq!(
            render(r#"{"a":[1,{"b":true}],"c":[]}"#, PRETTY),
            "{\n  \"a\": [\n    1,\n    {\n      \"b\": true\n    }\n  ],\n  \"c\": []\n}"
        );
        assert_eq!(render("null", PRETTY), "null");
        assert_eq!(render("\"x\"", PRETTY), "\"x\"");
    }

    #[test]
    fn colours_keys_and_values_differently() {
        let f = Format {
            pretty: true,
            color: true,
        };
        let s = render(r#"{"k":"v","n":1}"#, f);
        assert!(s.contains('\u{1b}'));
        let key = format!("{}\"k\"{}", KEY.render(), KEY.render_reset());
        let value = format!("{}\"v\"{}", STRING.render(), STRING.render_reset());
        assert!(s.contains(&key) && s.contains(&value), "{s:?}");
    }

    #[test]
    fn format_decision() {
        let args = |json, no_color| OutputArgs { json, no_color };
        assert_eq!(
            Format::decide(&args(false, false), true, false),
            PRETTY.with_color()
        );
        assert_eq!(Format::decide(&args(false, false), false, false), PLAIN);
        assert_eq!(Format::decide(&args(true, false), true, false), PLAIN);
        assert_eq!(Format::decide(&args(false, true), true, false), PRETTY);
        assert_eq!(Format::decide(&args(false, false), true, true), PRETTY);
    }

    impl Format {
        fn with_color(mut self) -> Format {
            self.color = true;
            self
        }
    }
}

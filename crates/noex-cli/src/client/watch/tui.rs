//! The live view of `noex watch` on a terminal (ratatui on crossterm): the query's result
//! as a table, its rows highlighted by the last change (or the events of a topic as a
//! scrolling list), and a status line. The terminal is restored by a guard on every exit
//! path, including a panic.

use std::collections::{HashSet, VecDeque};
use std::io::Stdout;
use std::time::{Duration, SystemTime};

use crossterm::event::{Event, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use noex_tokio::{Changes, Record};
use ratatui::backend::CrosstermBackend;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Wrap};
use ratatui::{Frame, Terminal};
use serde_json::Value;
use tokio::sync::mpsc;

use super::updates::{record_json, state_name, Target, Update};
use crate::client::failure::Failure;
use crate::timefmt;

/// How many events a topic view keeps.
const MAX_EVENTS: usize = 500;
/// Widest a table column gets.
const MAX_COLUMN: usize = 40;

/// Raw mode and the alternate screen, undone on drop.
#[derive(Debug)]
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> Result<TerminalGuard, Failure> {
        enable_raw_mode().map_err(|e| Failure::Other(format!("cannot use the terminal: {e}")))?;
        let guard = TerminalGuard;
        crossterm::execute!(
            std::io::stdout(),
            EnterAlternateScreen,
            crossterm::cursor::Hide
        )
        .map_err(|e| Failure::Other(format!("cannot use the terminal: {e}")))?;
        // A panic restores the terminal before its message is printed.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        Ok(guard)
    }
}

fn restore() {
    let _ = disable_raw_mode();
    let _ = crossterm::execute!(
        std::io::stdout(),
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// What a query's part of the view shows.
#[derive(Debug)]
enum Shown {
    /// Nothing yet.
    Waiting,
    /// A list of records (a live query's view) and its last change.
    Records {
        /// The current result, in the server's order.
        records: Vec<Record<Value>>,
        /// The keys (as JSON text) of the records the last change added or updated.
        changed: HashSet<String>,
        /// The records the last change removed, as last seen.
        removed: Vec<Record<Value>>,
    },
    /// A whole result that is not a list of records.
    Whole(Value),
}

/// Everything the view shows.
#[derive(Debug)]
struct View {
    title: String,
    topic: bool,
    /// The records' key field (its column comes first).
    key: String,
    shown: Shown,
    last_change: Option<SystemTime>,
    events: VecDeque<Line<'static>>,
    event_count: u64,
    state: &'static str,
    reconnects: u32,
    restored_at: Option<SystemTime>,
    gaps: u32,
}

impl View {
    fn apply(&mut self, update: Update) -> Option<Failure> {
        let now = SystemTime::now();
        match update {
            Update::Changes { changes, view } => {
                self.apply_changes(changes, view.unwrap_or_default());
                self.last_change = Some(now);
            }
            Update::Data(data) => {
                self.shown = Shown::Whole(data);
                self.last_change = Some(now);
            }
            // The whole results that follow say it.
            Update::Whole(_) => {}
            Update::Event { topic, event } => {
                let data = event.get("data").cloned().unwrap_or(Value::Null);
                self.push(Line::from(vec![
                    Span::styled(
                        format!("{} ", timefmt::clock(now)),
                        Style::default().fg(Color::DarkGray),
                    ),
                    Span::styled(format!("{topic} "), Style::default().fg(Color::Cyan)),
                    Span::raw(data.to_string()),
                ]));
                self.event_count += 1;
                self.last_change = Some(now);
            }
            Update::Gap { from, to } => {
                self.gaps += 1;
                self.push(Line::styled(
                    format!(
                        "── gap: events between {} and {} may have been missed ──",
                        timefmt::clock(from),
                        timefmt::clock(to)
                    ),
                    Style::default()
                        .fg(Color::Yellow)
                        .add_modifier(Modifier::BOLD),
                ));
            }
            Update::Lagged(missed) => self.push(Line::styled(
                format!("── {missed} events dropped (too slow) ──"),
                Style::default().fg(Color::Yellow),
            )),
            Update::State(s) => self.state = state_name(s),
            Update::Reconnected => {
                self.reconnects += 1;
                self.restored_at = Some(now);
            }
            Update::End(failure) => return Some(failure),
        }
        None
    }

    /// A live query's change: the view is the new table; the records the change added or
    /// updated are highlighted and those it removed shown struck through under it. The
    /// first change (the initial result, all added) highlights nothing.
    fn apply_changes(&mut self, changes: Changes<Value>, records: Vec<Record<Value>>) {
        let first = !matches!(self.shown, Shown::Records { .. });
        let (changed, removed) = if first {
            (HashSet::new(), Vec::new())
        } else {
            let changed = changes
                .added
                .iter()
                .chain(&changes.updated)
                .map(|r| r.key.to_string())
                .collect();
            (changed, changes.removed)
        };
        self.shown = Shown::Records {
            records,
            changed,
            removed,
        };
    }

    fn push(&mut self, line: Line<'static>) {
        if self.events.len() == MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(line);
    }

    fn draw(&self, frame: &mut Frame<'_>) {
        let [header, body, status] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(1),
            Constraint::Length(1),
        ])
        .areas(frame.area());
        let last = self.last_change.map_or("never".to_string(), |t| {
            format!("{} UTC", timefmt::clock(t))
        });
        let count = if self.topic {
            format!("{} events", self.event_count)
        } else {
            match &self.shown {
                Shown::Records { records, .. } => format!("{} records", records.len()),
                Shown::Whole(Value::Array(items)) => format!("{} records", items.len()),
                Shown::Whole(_) => "1 value".to_string(),
                Shown::Waiting => "waiting for data".to_string(),
            }
        };
        frame.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled(
                    format!("noex watch {}", self.title),
                    Style::default().add_modifier(Modifier::BOLD),
                ),
                Span::raw(format!("  │  {count}  │  last change {last}")),
            ])),
            header,
        );
        let block = Block::default().borders(Borders::TOP);
        if self.topic {
            let height = body.height.saturating_sub(1) as usize;
            let skip = self.events.len().saturating_sub(height);
            let lines: Vec<Line<'_>> = self.events.iter().skip(skip).cloned().collect();
            frame.render_widget(Paragraph::new(lines).block(block), body);
        } else {
            match &self.shown {
                Shown::Records {
                    records,
                    changed,
                    removed,
                } => {
                    let rows = records
                        .iter()
                        .map(|r| {
                            let style = if changed.contains(&r.key.to_string()) {
                                RowStyle::Changed
                            } else {
                                RowStyle::Plain
                            };
                            (record_json(r), style)
                        })
                        .chain(removed.iter().map(|r| (record_json(r), RowStyle::Removed)))
                        .collect();
                    frame.render_widget(self.table(rows, block), body);
                }
                Shown::Whole(Value::Array(items)) => {
                    let rows = items.iter().map(|v| (v.clone(), RowStyle::Plain)).collect();
                    frame.render_widget(self.table(rows, block), body);
                }
                Shown::Whole(other) => frame.render_widget(
                    Paragraph::new(serde_json::to_string_pretty(other).unwrap_or_default())
                        .wrap(Wrap { trim: false })
                        .block(block),
                    body,
                ),
                Shown::Waiting => frame.render_widget(Paragraph::new("").block(block), body),
            }
        }
        let state_style = match self.state {
            "connected" => Style::default().fg(Color::Green),
            _ => Style::default().fg(Color::Yellow),
        };
        let mut spans = vec![
            Span::styled(format!("● {}", self.state), state_style),
            Span::raw(format!("  │  reconnects: {}", self.reconnects)),
        ];
        if let Some(t) = self.restored_at {
            spans.push(Span::raw(format!(
                "  │  subscription restored at {}",
                timefmt::clock(t)
            )));
        }
        if self.topic && self.gaps > 0 {
            spans.push(Span::styled(
                format!("  │  gaps: {}", self.gaps),
                Style::default().fg(Color::Yellow),
            ));
        }
        spans.push(Span::styled(
            "  │  q: quit",
            Style::default().fg(Color::DarkGray),
        ));
        frame.render_widget(
            Paragraph::new(Line::from(spans))
                .style(Style::default().add_modifier(Modifier::REVERSED)),
            status,
        );
    }

    fn table<'a>(&self, items: Vec<(Value, RowStyle)>, block: Block<'a>) -> Table<'a> {
        let columns = columns(items.iter().map(|(v, _)| v), &self.key);
        let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
        let rows: Vec<(Vec<String>, RowStyle)> = items
            .iter()
            .map(|(item, style)| {
                let cells = columns
                    .iter()
                    .map(|c| match item {
                        Value::Object(m) => m.get(c).map(cell).unwrap_or_default(),
                        other => cell(other),
                    })
                    .collect();
                (cells, *style)
            })
            .collect();
        for (row, _) in &rows {
            for (w, text) in widths.iter_mut().zip(row) {
                *w = (*w).max(text.chars().count()).min(MAX_COLUMN);
            }
        }
        let rows = rows.into_iter().map(|(row, style)| {
            let r = Row::new(row.into_iter().map(Cell::from));
            match style {
                RowStyle::Plain => r,
                RowStyle::Changed => r.style(
                    Style::default()
                        .fg(Color::Black)
                        .bg(Color::Yellow)
                        .add_modifier(Modifier::BOLD),
                ),
                RowStyle::Removed => r.style(
                    Style::default()
                        .fg(Color::Red)
                        .add_modifier(Modifier::CROSSED_OUT),
                ),
            }
        });
        Table::new(rows, widths.iter().map(|w| Constraint::Length(*w as u16)))
            .header(
                Row::new(columns.into_iter().map(Cell::from))
                    .style(Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)),
            )
            .column_spacing(2)
            .block(block)
    }
}

/// How a table row is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowStyle {
    /// As it is.
    Plain,
    /// Added or updated by the last change: highlighted.
    Changed,
    /// Removed by the last change: struck through, under the others.
    Removed,
}

/// The columns of a list of records: the fields in order of appearance, the key first and
/// the metadata (`_version`, ...) last; `value` for a list of non-objects.
fn columns<'a>(items: impl Iterator<Item = &'a Value>, key: &str) -> Vec<String> {
    let mut plain = Vec::new();
    let mut meta = Vec::new();
    let mut other = false;
    for item in items {
        match item {
            Value::Object(m) => {
                for k in m.keys() {
                    let list = if k.starts_with('_') {
                        &mut meta
                    } else {
                        &mut plain
                    };
                    if !list.contains(k) {
                        list.push(k.clone());
                    }
                }
            }
            _ => other = true,
        }
    }
    if let Some(i) = plain.iter().position(|k| k == key) {
        let id = plain.remove(i);
        plain.insert(0, id);
    }
    plain.extend(meta);
    if plain.is_empty() && other {
        plain.push("value".into());
    }
    plain
}

/// A cell's text: strings as they are, anything else as compact JSON.
fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Keys from a thread reading the terminal: `true` for quit, `false` for a redraw.
fn spawn_input() -> mpsc::UnboundedReceiver<bool> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || loop {
        if tx.is_closed() {
            return;
        }
        match crossterm::event::poll(Duration::from_millis(200)) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(_) => return,
        }
        let quit = match crossterm::event::read() {
            Ok(Event::Key(k)) if k.kind != KeyEventKind::Release => {
                matches!(k.code, KeyCode::Char('q') | KeyCode::Esc)
                    || (k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL))
            }
            Ok(_) => false,
            Err(_) => return,
        };
        if tx.send(quit).is_err() {
            return;
        }
    });
    rx
}

/// Runs the live view until `q`, Esc, Ctrl-C or the end of the subscription.
pub(crate) async fn run(
    target: &Target,
    mut rx: mpsc::UnboundedReceiver<Update>,
) -> Result<(), Failure> {
    let _guard = TerminalGuard::enter()?;
    let mut terminal: Terminal<CrosstermBackend<Stdout>> =
        Terminal::new(CrosstermBackend::new(std::io::stdout()))
            .map_err(|e| Failure::Other(format!("cannot use the terminal: {e}")))?;
    let key = match target {
        Target::Query { key, .. } => key.clone(),
        Target::Topic(_) => String::new(),
    };
    let mut view = View {
        title: target.title(),
        topic: matches!(target, Target::Topic(_)),
        key,
        shown: Shown::Waiting,
        last_change: None,
        events: VecDeque::new(),
        event_count: 0,
        state: "connected",
        reconnects: 0,
        restored_at: None,
        gaps: 0,
    };
    let mut keys = spawn_input();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        terminal
            .draw(|f| view.draw(f))
            .map_err(|e| Failure::Other(format!("cannot draw: {e}")))?;
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            key = keys.recv() => match key {
                Some(true) | None => return Ok(()),
                Some(false) => {}
            },
            update = rx.recv() => match update {
                Some(u) => {
                    if let Some(failure) = view.apply(u) {
                        return Err(failure);
                    }
                }
                None => return Ok(()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_put_the_key_first_and_metadata_last() {
        let items = [
            json!({"_version": 1, "name": "a", "id": "x"}),
            json!({"age": 3, "id": "y"}),
        ];
        assert_eq!(
            columns(items.iter(), "id"),
            ["id", "name", "age", "_version"]
        );
        assert_eq!(
            columns(items.iter(), "name"),
            ["name", "id", "age", "_version"]
        );
        assert_eq!(columns([json!(1)].iter(), "id"), ["value"]);
    }
}

//! A `tracing` subscriber for tests that records every span, field and event, at every
//! level, as text lines. Shared by the core's and the client's tracing tests (the client's
//! includes this file by path).
#![allow(dead_code)] // each test binary uses part of it

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Records every span, field and event, at every level, as text lines.
#[derive(Clone, Default)]
pub(crate) struct Capture {
    lines: Arc<Mutex<Vec<String>>>,
    next_id: Arc<AtomicU64>,
}

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={}", field.name(), value);
    }
}

impl Capture {
    fn push(&self, line: String) {
        self.lines.lock().unwrap().push(line);
    }
    pub(crate) fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
    pub(crate) fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let mut line = format!(
            "SPAN#{id} {} {}",
            span.metadata().level(),
            span.metadata().name()
        );
        span.record(&mut Fields(&mut line));
        self.push(line);
        Id::from_u64(id)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut line = format!("RECORD#{}", span.into_u64());
        values.record(&mut Fields(&mut line));
        self.push(line);
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let parent = event.parent().map_or(0, Id::into_u64);
        let mut line = format!("EVENT {} parent#{parent}", event.metadata().level());
        event.record(&mut Fields(&mut line));
        self.push(line);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

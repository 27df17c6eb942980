//! The span of one request (`py.call`, `py.eval`, ... `py.stream`): opened when the
//! request is decoded in the submitting NIF (so its queue wait is known), ended once when
//! the request is answered, with the outcome. Exists only while tracing is on.

use super::{new_request_span, propagation};
use opentelemetry::trace::Status;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// How a request ended, as its span's `py.outcome` says.
pub enum Outcome {
    Ok,
    /// `class`: the Python exception class name (or the library's error name);
    /// `text`: its message, the span's status description.
    Error { class: String, text: String },
    Timeout,
    Cancelled,
}

/// The request's handle on its span; ending it is the request's (`finish`), and a trace
/// dropped unended (a request nobody answered) ends `cancelled`.
pub struct RequestTrace {
    inner: Arc<Inner>,
}

/// What the span's attributes are computed from; shared with the scopes that run the
/// request's work (`super::Scope`), which add conversion time while it runs.
pub(super) struct Inner {
    pub(super) span: tracing::Span,
    stream: bool,
    enqueued: Instant,
    started: OnceLock<Instant>,
    pub(super) convert_ns: AtomicU64,
    items: AtomicU64,
    finished: AtomicBool,
}

impl RequestTrace {
    /// The span of a request of kind `name` (`py.call`...), a child of the caller's
    /// `traceparent` when it is well formed; `None` while the runtime's spans are off.
    pub fn begin(name: &'static str, module: Option<String>, function: Option<String>, traceparent: Option<&[u8]>) -> Option<RequestTrace> {
        if !crate::spans::runtime_enabled() {
            return None;
        }
        let span = new_request_span(name);
        if let Some(parent) = traceparent.and_then(propagation::parse) {
            let _ = span.set_parent(parent);
        }
        if let Some(module) = module {
            span.record("py.module", module.as_str());
        }
        if let Some(function) = function {
            span.record("py.function", function.as_str());
        }
        let inner = Inner {
            span,
            stream: name == "py.stream",
            enqueued: Instant::now(),
            started: OnceLock::new(),
            convert_ns: AtomicU64::new(0),
            items: AtomicU64::new(0),
            finished: AtomicBool::new(false),
        };
        Some(RequestTrace { inner: Arc::new(inner) })
    }

    pub(super) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    pub fn is_stream(&self) -> bool {
        self.inner.stream
    }

    /// A pushed stream sent one more item.
    pub fn item_sent(&self) {
        self.inner.items.fetch_add(1, Ordering::Relaxed);
    }

    /// A collected stream answered this many items.
    pub fn set_items(&self, n: u64) {
        self.inner.items.store(n, Ordering::Relaxed);
    }

    /// End the span with `outcome` (only the first call counts).
    pub fn finish(&self, outcome: Outcome) {
        let inner = &self.inner;
        if inner.finished.swap(true, Ordering::AcqRel) {
            return;
        }
        let span = &inner.span;
        let now = Instant::now();
        match inner.started.get() {
            Some(started) => span.record("py.run_us", micros(now.duration_since(*started))),
            // Never ran (cancelled or refused while queued): it waited all along.
            None => span.record("py.queue_wait_us", micros(now.duration_since(inner.enqueued))),
        };
        span.record("py.convert_us", (inner.convert_ns.load(Ordering::Relaxed) / 1000) as i64);
        if inner.stream {
            span.record("py.items", inner.items.load(Ordering::Relaxed) as i64);
        }
        let label = match outcome {
            Outcome::Ok => "ok",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
            Outcome::Error { class, text } => {
                span.record("error.type", class.as_str());
                span.set_status(Status::error(text));
                "error"
            }
        };
        span.record("py.outcome", label);
    }
}

impl Inner {
    /// The context starts running the request (first time only: an async request is
    /// entered again for each piece of its work).
    pub(super) fn mark_started(&self, context_id: u64) {
        let now = Instant::now();
        if self.started.set(now).is_ok() {
            self.span.record("py.queue_wait_us", micros(now.duration_since(self.enqueued)));
            self.span.record("py.context", context_id as i64);
        }
    }
}

impl Drop for RequestTrace {
    fn drop(&mut self) {
        self.finish(Outcome::Cancelled);
    }
}

fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Outcome {
    /// The outcome a reply term tells: `{error, Reason}` is an error whose class is the
    /// reason's first element (`{'ValueError', Message}`, `{'ValueError', Message,
    /// Details}`, `{badarg, What}`) or the reason itself (`context_stopped`); anything
    /// else is `ok`. With `count_items`, also the length of an `{ok, List}`.
    pub fn of_reply(reply: rustler::Term, count_items: bool) -> (Outcome, Option<u64>) {
        use rustler::types::tuple::get_tuple;
        let Ok(fields) = get_tuple(reply) else { return (Outcome::Ok, None) };
        match fields.as_slice() {
            [tag, reason] if is_atom(*tag, "error") => {
                let (class, text) = match get_tuple(*reason) {
                    Ok(parts) if parts.len() >= 2 => (text_of(parts[0]), text_of(parts[1])),
                    _ => (text_of(*reason), None),
                };
                let class = class.unwrap_or_else(|| "error".to_owned());
                let text = text.unwrap_or_else(|| class.clone());
                (Outcome::Error { class, text }, None)
            }
            [tag, value] if count_items && is_atom(*tag, "ok") => (Outcome::Ok, value.list_length().ok().map(|n| n as u64)),
            _ => (Outcome::Ok, None),
        }
    }

    /// The outcome of a stream's last event: `done`, `{error, cancelled}` or an error.
    pub fn of_stream_end(event: rustler::Term) -> Outcome {
        if is_atom(event, "done") {
            return Outcome::Ok;
        }
        match rustler::types::tuple::get_tuple(event).as_deref() {
            Ok([tag, reason]) if is_atom(*tag, "error") && is_atom(*reason, "cancelled") => Outcome::Cancelled,
            _ => Outcome::of_reply(event, false).0,
        }
    }
}

fn is_atom(term: rustler::Term, name: &str) -> bool {
    term.atom_to_string().is_ok_and(|a| a == name)
}

/// An atom's name, a UTF-8 binary or a charlist as text, cut at 1 KiB: a span attribute
/// is no place for a megabyte message or name, and the store holds 100,000 spans.
pub fn text_of(term: rustler::Term) -> Option<String> {
    const MAX: usize = 1024;
    let text = if let Ok(atom) = term.atom_to_string() {
        atom
    } else if let Ok(bin) = term.decode::<rustler::Binary>() {
        String::from_utf8_lossy(&bin.as_slice()[..bin.len().min(MAX)]).into_owned()
    } else if term.is_list() {
        let mut out = String::new();
        let mut tail = term;
        while let Ok((head, rest)) = tail.list_get_cell() {
            out.push(char::from_u32(head.decode::<u32>().ok()?)?);
            if out.len() >= MAX {
                break;
            }
            tail = rest;
        }
        out
    } else {
        return None;
    };
    Some(text)
}

//! Tracing spans from Python (`erlang.Span`, whose native half is `spans_py`), recorded with the OpenTelemetry SDK and
//! collected for `py:get_traces/0`. Python spans have run-time names and explicit parents
//! (carried in a `contextvars` variable, so children follow asyncio tasks), which the SDK's
//! tracer API models directly. The maps `get_traces/0` answers keep 2.3.1's shape
//! (integer ids, `ok | error` status, `end_attrs`, events newest first) over the SDK's data.

use crate::atoms;
use opentelemetry::trace::{Span as _, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanProcessor, Tracer};
use rustler::{Encoder, Env, Term};
use std::sync::atomic::{AtomicBool, Ordering};
use std::collections::VecDeque;
use std::sync::{LazyLock, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Finished spans kept for `get_traces/0`; the oldest go first past this many.
const MAX_FINISHED: usize = 100_000;

static ENABLED: AtomicBool = AtomicBool::new(false);
/// Whether the runtime records its own spans too (`crate::trace`), not only Python's.
static RUNTIME: AtomicBool = AtomicBool::new(false);
static FINISHED: Mutex<VecDeque<SpanData>> = Mutex::new(VecDeque::new());
static TRACER: LazyLock<Tracer> = LazyLock::new(|| build_provider().tracer("erlang_python"));

/// The one SDK provider behind both `erlang.Span` and the runtime's own spans
/// (`crate::trace`), so that one trace holds both.
fn build_provider() -> SdkTracerProvider {
    // Finished spans go to the collector of get_traces/0, and to OTLP while exporting.
    SdkTracerProvider::builder()
        .with_span_processor(crate::otlp_export::Tee(Collector))
        .build()
}

/// The tracer every span of the library is made with.
pub fn tracer() -> Tracer {
    TRACER.clone()
}

/// Whether requests and Erlang callbacks get spans of their own (`crate::trace`).
pub fn runtime_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed) && RUNTIME.load(Ordering::Relaxed)
}

rustler::atoms! { name, span_id, parent_id, trace_id, start_time, end_time, duration_us, status, attributes, end_attrs, events, time, attrs }

#[derive(Debug)]
struct Collector;

impl SpanProcessor for Collector {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        let mut finished = FINISHED.lock().unwrap();
        if finished.len() >= MAX_FINISHED {
            finished.pop_front();
        }
        finished.push_back(span);
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: std::time::Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

/// A new span named `name`, a child of the span in `parent` (if any), or `None` while
/// tracing is disabled. The Python side (`spans_py`) keeps the context it answers.
pub fn start_span(name: String, parent: &Context, attributes: Vec<KeyValue>) -> Option<Context> {
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    let mut span = TRACER.start_with_context(name, parent);
    span.set_attributes(attributes);
    Some(parent.with_span(span))
}

/// Record spans or not; with `runtime`, the runtime's own spans besides Python's.
pub fn set_enabled(enabled: bool, runtime: bool) {
    RUNTIME.store(runtime, Ordering::Relaxed);
    ENABLED.store(enabled, Ordering::Relaxed);
}

pub fn clear() {
    FINISHED.lock().unwrap().clear();
}

/// The finished spans as maps, oldest (earliest started) first.
pub fn finished_terms(env: Env) -> Vec<Term> {
    // Copied out first: Python code ending spans must not wait while terms are built.
    let finished: Vec<SpanData> = FINISHED.lock().unwrap().iter().cloned().collect();
    sorted_terms(env, finished)
}

/// Take the finished spans of trace `trace_id` out of the store (fetch and clear), as
/// maps, oldest first; spans of other traces stay.
pub fn take_trace(env: Env, trace_id: opentelemetry::trace::TraceId) -> Vec<Term> {
    let taken: Vec<SpanData> = {
        let mut finished = FINISHED.lock().unwrap();
        let (taken, kept): (VecDeque<SpanData>, VecDeque<SpanData>) =
            finished.drain(..).partition(|s| s.span_context.trace_id() == trace_id);
        *finished = kept;
        taken.into()
    };
    sorted_terms(env, taken)
}

fn sorted_terms(env: Env, mut finished: Vec<SpanData>) -> Vec<Term> {
    // Recorded as they end, so a parent comes after its children; 2.3.1 listed spans in
    // the order they started. Stable, so spans started at the same instant keep their order.
    finished.sort_by_key(|s| s.start_time);
    finished.iter().map(|s| span_term(env, s)).collect()
}

fn micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// 2.3.1 numbered spans with integers; the SDK's 64-bit ids read as one.
fn id_term<'a>(env: Env<'a>, id: opentelemetry::trace::SpanId) -> Term<'a> {
    u64::from_be_bytes(id.to_bytes()).encode(env)
}

fn span_term<'a>(env: Env<'a>, s: &SpanData) -> Term<'a> {
    let text = |t: &str| binary(env, t.as_bytes());
    let parent = if s.parent_span_id == opentelemetry::trace::SpanId::INVALID {
        atoms::undefined().encode(env)
    } else {
        id_term(env, s.parent_span_id)
    };
    // A span that was dropped unended has no status; it did not fail, so it is `ok`.
    let (status_term, end_attrs_term) = match &s.status {
        Status::Error { description } => (
            atoms::error().encode(env),
            map_of(env, &[(text("exception"), text(description))]),
        ),
        Status::Ok | Status::Unset => (atoms::ok().encode(env), map_of(env, &[])),
    };
    // 2.3.1 prepended each event, so its lists run newest first.
    let event_terms: Vec<Term> = s
        .events
        .iter()
        .rev()
        .map(|e| {
            let pairs = [
                (name().encode(env), text(&e.name)),
                (attrs().encode(env), attrs_term(env, &e.attributes)),
                (time().encode(env), micros(e.timestamp).encode(env)),
            ];
            map_of(env, &pairs)
        })
        .collect();
    let start = micros(s.start_time);
    let end = micros(s.end_time);
    let pairs = [
        (name().encode(env), text(&s.name)),
        (span_id().encode(env), id_term(env, s.span_context.span_id())),
        (parent_id().encode(env), parent),
        (trace_id().encode(env), text(&s.span_context.trace_id().to_string())),
        (start_time().encode(env), start.encode(env)),
        (end_time().encode(env), end.encode(env)),
        (duration_us().encode(env), (end - start).encode(env)),
        (status().encode(env), status_term),
        (attributes().encode(env), attrs_term(env, &s.attributes)),
        (end_attrs().encode(env), end_attrs_term),
        (events().encode(env), event_terms.encode(env)),
    ];
    map_of(env, &pairs)
}

fn attrs_term<'a>(env: Env<'a>, attrs: &[KeyValue]) -> Term<'a> {
    let pairs: Vec<(Term, Term)> = attrs
        .iter()
        .map(|kv| (binary(env, kv.key.as_str().as_bytes()), value_term(env, &kv.value)))
        .collect();
    map_of(env, &pairs)
}

fn value_term<'a>(env: Env<'a>, v: &Value) -> Term<'a> {
    match v {
        Value::Bool(b) => b.encode(env),
        Value::I64(i) => i.encode(env),
        Value::F64(f) => f.encode(env),
        Value::String(s) => binary(env, s.as_str().as_bytes()),
        other => binary(env, other.to_string().as_bytes()),
    }
}

/// A binary term of `data` (not `convert`'s: this module sits below the request types,
/// which `convert` uses).
fn binary<'a>(env: Env<'a>, data: &[u8]) -> Term<'a> {
    let mut bin = rustler::NewBinary::new(env, data.len());
    bin.as_mut_slice().copy_from_slice(data);
    bin.into()
}

fn map_of<'a>(env: Env<'a>, pairs: &[(Term<'a>, Term<'a>)]) -> Term<'a> {
    let mut map = Term::map_new(env);
    for (k, v) in pairs {
        map = map.map_put(*k, *v).unwrap_or(map);
    }
    map
}

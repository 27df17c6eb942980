//! The runtime's own spans: one per request (`request_span`), one per Erlang callback
//! (`erlang.call`), made with the `tracing` crate and bridged by `tracing-opentelemetry`
//! into the SDK provider `crate::spans` builds, so that they and the `erlang.Span` spans
//! of Python code form one trace. W3C trace context crosses the boundary both ways
//! (`propagation`).
//!
//! The `tracing` subscriber is the NIF's own `Dispatch`, used only where these spans are
//! made: never installed as a global default, so it neither takes nor disturbs whatever
//! subscriber a host program set up, and no `tracing` event of another library in the
//! process lands in our store. A span made under it keeps that dispatch for its whole
//! life, so recording and closing need no default either.
//!
//! Nothing here runs while tracing is off, or on for Python's spans only (`enable_tracing/0`,
//! as in 2.3.1), beyond two atomic loads per request and a thread-local read per
//! conversion: no span objects, no clocks read.

pub mod propagation;
pub mod request_span;

pub use request_span::{text_of, Outcome, RequestTrace};

use opentelemetry::Context;
use pyo3::prelude::*;
use request_span::Inner;
use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};
use std::time::Instant;
use tracing::field::Empty;
use tracing::Dispatch;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

static DISPATCH: LazyLock<Dispatch> = LazyLock::new(|| {
    // Only what the span specification names becomes an attribute: no source location,
    // thread, level, target or busy/idle times.
    let layer = tracing_opentelemetry::layer()
        .with_tracer(crate::spans::tracer())
        .with_location(false)
        .with_threads(false)
        .with_level(false)
        .with_target(false)
        .with_tracked_inactivity(false);
    Dispatch::new(tracing_subscriber::registry().with(layer))
});

thread_local! {
    /// The request whose work runs now on this thread: conversions add their time to it.
    static CURRENT: RefCell<Option<Arc<Inner>>> = const { RefCell::new(None) };
}

/// A request span named `name`, with no parent yet (`parent: None`: never the
/// subscriber's idea of a current span).
fn new_request_span(name: &'static str) -> tracing::Span {
    tracing::dispatcher::with_default(&DISPATCH, || {
        tracing::info_span!(
            parent: None,
            "py.request",
            otel.name = name,
            py.module = Empty,
            py.function = Empty,
            py.context = Empty,
            py.queue_wait_us = Empty,
            py.run_us = Empty,
            py.convert_us = Empty,
            py.outcome = Empty,
            py.items = Empty,
            "error.type" = Empty,
        )
    })
}

/// While a request's work runs on a context thread: its conversions are timed into it,
/// and (for `enter`) Python code sees its span as the current one, so `erlang.Span`s and
/// `erlang.call`s made there, and asyncio tasks and loop callbacks created there (which
/// copy the current `contextvars` context), are its children.
pub struct Scope<'py> {
    outer: Option<Arc<Inner>>,
    /// The `_current` span variable of `erlang_shim._span` and the token that restores it.
    python: Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)>,
}

/// Enter the request's span for the Python code about to run (the context runs it now).
pub fn enter<'py>(py: Python<'py>, trace: Option<&RequestTrace>, context_id: u64) -> Option<Scope<'py>> {
    let inner = trace?.inner().clone();
    inner.mark_started(context_id);
    let python = set_current_span(py, inner.span.context()).ok();
    Some(Scope { outer: swap_current(Some(inner)), python })
}

/// Time the request's conversions only (its result, converted when its task ended).
pub fn converting<'py>(trace: Option<&RequestTrace>) -> Option<Scope<'py>> {
    let inner = trace?.inner().clone();
    Some(Scope { outer: swap_current(Some(inner)), python: None })
}

impl Drop for Scope<'_> {
    fn drop(&mut self) {
        if let Some((var, token)) = self.python.take() {
            let _ = var.call_method1("reset", (token,));
        }
        swap_current(self.outer.take());
    }
}

fn swap_current(next: Option<Arc<Inner>>) -> Option<Arc<Inner>> {
    CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), next))
}

fn current_span_var(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    py.import("erlang_shim._span")?.getattr("_current")
}

fn set_current_span(py: Python<'_>, cx: Context) -> PyResult<(Bound<'_, PyAny>, Bound<'_, PyAny>)> {
    let var = current_span_var(py)?;
    let handle = crate::spans_py::handle_for(py, cx)?;
    let token = var.call_method1("set", (handle,))?;
    Ok((var, token))
}

/// The context of the span current in Python code (an open `erlang.Span`, or the
/// request's span), if any.
fn python_current_context(py: Python<'_>) -> Option<Context> {
    let current = current_span_var(py).ok()?.call_method0("get").ok()?;
    if current.is_none() {
        return None;
    }
    crate::spans_py::context_of(&current).ok()
}

/// Times one argument or result conversion into the running request, if it is traced.
pub struct ConvertTimer(Instant);

pub fn convert_timer() -> Option<ConvertTimer> {
    // Only a traced request is current (also when tracing was turned off while it ran:
    // its span still ends, with all its conversion time).
    if CURRENT.with(|c| c.borrow().is_none()) {
        return None;
    }
    Some(ConvertTimer(Instant::now()))
}

impl Drop for ConvertTimer {
    fn drop(&mut self) {
        let ns = self.0.elapsed().as_nanos() as u64;
        CURRENT.with(|c| {
            if let Some(inner) = c.borrow().as_ref() {
                inner.convert_ns.fetch_add(ns, Ordering::Relaxed);
            }
        });
    }
}

/// The span of one `erlang.call` / `erlang.async_call`: a child of the span current in
/// Python where the call was made; its `traceparent` goes with the callback message, so
/// the Erlang function, and any `py` call it makes, continue the trace. Ends when dropped
/// (the answer came, or the wait was given up).
pub struct CallbackSpan {
    span: tracing::Span,
    traceparent: Option<String>,
}

impl CallbackSpan {
    pub fn traceparent(&self) -> Option<&str> {
        self.traceparent.as_deref()
    }

    /// The Erlang function failed: the span's status says so.
    pub fn failed(&self, text: &str) {
        self.span.set_status(opentelemetry::trace::Status::error(text.to_owned()));
    }
}

/// A span for calling the Erlang function registered as `name`; `None` while the
/// runtime's spans are off.
pub fn callback_span(py: Python<'_>, name: &str, context_id: u64) -> Option<CallbackSpan> {
    if !crate::spans::runtime_enabled() {
        return None;
    }
    let span = tracing::dispatcher::with_default(&DISPATCH, || {
        tracing::info_span!(parent: None, "erlang.call", "erlang.function" = name, py.context = context_id as i64)
    });
    if let Some(parent) = python_current_context(py) {
        let _ = span.set_parent(parent);
    }
    let traceparent = propagation::format(&span.context());
    Some(CallbackSpan { span, traceparent })
}

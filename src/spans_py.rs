//! The native half of `erlang.Span` (python/erlang_shim/_span.py): a running span is a
//! capsule holding its OpenTelemetry context, which the Python `Span` keeps and hands
//! back to these functions. A capsule rather than a class of ours, so that nothing here
//! has a type object to share between interpreters (see `pytypes` for why capsules are
//! sound in any interpreter).

use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry::{Context, KeyValue, Value};
use pyo3::exceptions::PyTypeError;
use crate::py_args;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyCapsule, PyCapsuleMethods, PyDict, PyFloat, PyInt, PyString};
use std::ffi::CStr;

/// The name a span's capsule carries; a capsule of any other name is refused.
const SPAN_CAPSULE: &CStr = c"erlang_python.Span";

/// The span context a capsule made by `_span_start` holds.
pub fn context_of(handle: &Bound<'_, PyAny>) -> PyResult<Context> {
    let capsule = handle.cast::<PyCapsule>().map_err(|_| PyTypeError::new_err("not a span handle"))?;
    let pointer = capsule.pointer_checked(Some(SPAN_CAPSULE))?;
    // SAFETY: a capsule of this name is only made by `_span_start`, from a boxed
    // `Context` that lives until the capsule is destroyed; the capsule is alive while
    // borrowed here, and the context is cloned before the borrow ends.
    let cx = unsafe { pointer.cast::<Context>().as_ref() };
    Ok(cx.clone())
}

/// A handle on a span the runtime owns (a request's), which Python code parents its spans
/// on. `erlang.Span` ends only the handles it started; the runtime ends this one.
pub fn handle_for(py: Python<'_>, cx: Context) -> PyResult<Bound<'_, PyCapsule>> {
    PyCapsule::new_with_value(py, cx, SPAN_CAPSULE)
}

/// Start a span (a child of the span `parent` when given), or `None` while tracing is
/// disabled.
#[pyfunction]
#[pyo3(signature = (name, parent=None, attrs=None))]
pub fn _span_start<'py>(
    py: Python<'py>,
    name: &Bound<'py, PyAny>,
    parent: Option<&Bound<'py, PyAny>>,
    attrs: Option<&Bound<'py, PyAny>>,
) -> PyResult<Option<Bound<'py, PyCapsule>>> {
    let name = py_args::text(name, "span name")?.into_owned();
    let attrs = py_args::optional_dict(attrs, "span attributes")?;
    let parent_cx = match parent {
        Some(handle) if !handle.is_none() => context_of(handle)?,
        _ => Context::default(),
    };
    let attributes = key_values(attrs.as_ref())?;
    match crate::spans::start_span(name, &parent_cx, attributes) {
        Some(cx) => Ok(Some(PyCapsule::new_with_value(py, cx, SPAN_CAPSULE)?)),
        None => Ok(None),
    }
}

/// Record an event in the span.
#[pyfunction]
#[pyo3(signature = (handle, name, attrs=None))]
pub fn _span_event(handle: &Bound<'_, PyAny>, name: &Bound<'_, PyAny>, attrs: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    let name = py_args::text(name, "event name")?.into_owned();
    let attrs = py_args::optional_dict(attrs, "event attributes")?;
    context_of(handle)?.span().add_event(name, key_values(attrs.as_ref())?);
    Ok(())
}

#[pyfunction]
pub fn _span_set_attribute(handle: &Bound<'_, PyAny>, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
    let key = py_args::text(key, "attribute key")?.into_owned();
    context_of(handle)?.span().set_attribute(KeyValue::new(key, to_value(value)?));
    Ok(())
}

/// End the span; an error description (the exception's text) marks it failed and
/// becomes its `end_attrs` `exception`.
#[pyfunction]
#[pyo3(signature = (handle, error=None))]
pub fn _span_end(handle: &Bound<'_, PyAny>, error: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    let error = py_args::optional_text(error, "span error")?;
    let cx = context_of(handle)?;
    let span = cx.span();
    match error {
        Some(description) => span.set_status(Status::error(description)),
        None => span.set_status(Status::Ok),
    }
    span.end();
    Ok(())
}

fn key_values(attrs: Option<&Bound<'_, PyDict>>) -> PyResult<Vec<KeyValue>> {
    let Some(attrs) = attrs else { return Ok(Vec::new()) };
    // A copy of the items: `str()` of a key or value runs Python code, which may change
    // the dict, and pyo3's iterator panics at a dict that changed size.
    attrs
        .items()
        .iter()
        .map(|item| {
            let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
            Ok(KeyValue::new(k.str()?.to_string(), to_value(&v)?))
        })
        .collect()
}

fn to_value(v: &Bound<'_, PyAny>) -> PyResult<Value> {
    Ok(if let Ok(b) = v.cast::<PyBool>() {
        Value::Bool(b.is_true())
    } else if let Ok(i) = v.cast::<PyInt>() {
        match i.extract::<i64>() {
            Ok(i) => Value::I64(i),
            Err(_) => Value::String(i.str()?.to_string().into()),
        }
    } else if let Ok(f) = v.cast::<PyFloat>() {
        Value::F64(f.value())
    } else if let Ok(s) = v.cast::<PyString>() {
        Value::String(s.to_str()?.to_string().into())
    } else {
        Value::String(v.str()?.to_string().into())
    })
}

//! Reading the arguments of the `erlang` module's native functions. They take each
//! argument as a plain object and read it here, because when pyo3 reads a typed
//! argument and fails, it adds a note to the error through a process-wide `intern!`
//! string, which must not be used in a sub-interpreter (docs/runtime.md, "One erlang
//! module per interpreter"). Numbers are read with `extract`, whose failures are
//! CPython's own errors.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use std::borrow::Cow;

/// `value` as text; `what` names the argument in the error (`"call() name"`).
pub fn text<'a>(value: &'a Bound<'_, PyAny>, what: &str) -> PyResult<Cow<'a, str>> {
    match value.cast::<PyString>() {
        Ok(text) => text.to_cow(),
        Err(_) => Err(wrong_type(value, what, "str")),
    }
}

/// An optional text argument: `None` when absent or `None`.
pub fn optional_text(value: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Option<String>> {
    match value {
        Some(value) if !value.is_none() => Ok(Some(text(value, what)?.into_owned())),
        _ => Ok(None),
    }
}

/// An optional dict argument: `None` when absent or `None`.
pub fn optional_dict<'py>(value: Option<&Bound<'py, PyAny>>, what: &str) -> PyResult<Option<Bound<'py, PyDict>>> {
    match value {
        Some(value) if !value.is_none() => match value.cast::<PyDict>() {
            Ok(dict) => Ok(Some(dict.clone())),
            Err(_) => Err(wrong_type(value, what, "dict")),
        },
        _ => Ok(None),
    }
}

fn wrong_type(value: &Bound<'_, PyAny>, what: &str, expected: &str) -> PyErr {
    let kind = value.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "object".into());
    PyTypeError::new_err(format!("{what} must be {expected}, not {kind}"))
}

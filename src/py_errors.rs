//! Reporting a Python exception that has no caller to go to.
//!
//! `PyErr::print` (`PyErr_Print`) is not a logging call: for `SystemExit` it calls
//! `Py_Exit`, which finalizes the interpreter under every context. Exceptions that escape
//! the event loop or its shutdown come from user code and may be any `BaseException`, so
//! they are formatted and sent to the output handler as a traceback instead.

use crate::atoms;
use pyo3::prelude::*;
use pyo3::IntoPyObjectExt;
use rustler::Encoder;

/// Send `err`'s traceback to the output handler as `{py_traceback, Who, Text}`; never exits.
pub fn log_exception(py: Python<'_>, err: &PyErr) {
    let text = py
        .import("traceback")
        .and_then(|tb| tb.call_method1("format_exception", (err.value(py),)))
        .and_then(|lines| "".into_bound_py_any(py)?.call_method1("join", (lines,)))
        .and_then(|s| Ok(s.str()?.to_string_lossy().into_owned()))
        // Formatting itself can fail (a broken `__str__`): still say what happened.
        .unwrap_or_else(|_| format!("{}: (traceback unavailable)\n", type_name(py, err)));
    crate::output::send_to_output_handler(|e, who| {
        (atoms::py_traceback(), who, crate::convert::py_bytes_to_binary(e, text.as_bytes())).encode(e)
    });
}

fn type_name(py: Python<'_>, err: &PyErr) -> String {
    err.get_type(py).name().map(|n| n.to_string()).unwrap_or_else(|_| "exception".into())
}

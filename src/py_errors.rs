//! Python exceptions reported to Erlang: the `{error, Reason}` a caller gets (with the
//! details when its request asked for them) and the traceback event the output handler
//! logs, which says where the exception happened (caller, context, request kind,
//! module and function).
//!
//! `PyErr::print` (`PyErr_Print`) is never used: for `SystemExit` it calls `Py_Exit`,
//! which finalizes the interpreter under every context. Exceptions that escape the event
//! loop or its shutdown come from user code and may be any `BaseException`, so they are
//! formatted and sent to the output handler like the others (`log_exception`).

use crate::atoms;
use crate::convert::{bounded_atom, py_bytes_to_binary, py_to_term, term_to_py_str};
use crate::mailbox::request::{Job, Request};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use pyo3::IntoPyObjectExt;
use rustler::{Encoder, Env, LocalPid, Term};
use std::cell::Cell;

/// Longest message text of an `{error, {Class, Message}}`, in characters. A message that
/// embeds another (an `ErlangError` whose Erlang reason holds the error of a nested call)
/// would otherwise grow with every re-entrant level.
pub const MESSAGE_MAX_CHARS: usize = 16 * 1024;
/// The traceback keeps the frames nearest the raise, and at most this much text.
const TRACEBACK_MAX_FRAMES: isize = 64;
const TRACEBACK_MAX_CHARS: usize = 64 * 1024;
/// At most this many of an exception's attributes go into its details (an exception
/// object is the user's, and may carry anything).
const MAX_ATTRIBUTES: usize = 64;
/// Module and function names in a log event are cut to this many characters.
const NAME_MAX_CHARS: usize = 256;

thread_local! {
    /// The `py_context` process of the context running on this thread, for log events.
    static CONTEXT: Cell<Option<LocalPid>> = const { Cell::new(None) };
}

/// The context thread running now belongs to `owner` (its `py_context` process).
pub fn set_context(owner: Option<LocalPid>) {
    CONTEXT.with(|c| c.set(owner));
}

/// Where an exception happened, for its log event, and whether the caller wants the
/// details in its error term.
pub struct Site {
    kind: &'static str,
    module: Option<String>,
    function: Option<String>,
    caller: Option<LocalPid>,
    details: bool,
}

impl Site {
    /// The request `req`, whose job `job` raised.
    pub fn of(req: &Request, job: &Job<Term>) -> Site {
        let name = |t: &Term| term_to_py_str(*t).map(|s| s.chars().take(NAME_MAX_CHARS).collect());
        let (kind, module, function) = match job {
            Job::Call { call, .. } => ("call", name(&call.module), name(&call.function)),
            Job::Eval { .. } => ("eval", None, None),
            Job::Exec { .. } => ("exec", None, None),
            Job::CallMethod { method, .. } => ("call_method", None, name(method)),
            Job::GetAttr { name: attr, .. } => ("getattr", None, name(attr)),
            Job::ToTerm { .. } => ("to_term", None, None),
            Job::AsyncCall { call } => ("async_call", name(&call.module), name(&call.function)),
            Job::AsyncGather { .. } => ("async_gather", None, None),
            Job::Stream { call } | Job::StreamStart { call, .. } => ("stream", name(&call.module), name(&call.function)),
            Job::StreamEval { .. } => ("stream_eval", None, None),
        };
        Site { kind, module, function, caller: Some(req.caller), details: req.error_details }
    }

    /// An exception with no request to answer (it escaped the event loop).
    fn loose() -> Site {
        Site { kind: "loop", module: None, function: None, caller: None, details: false }
    }
}

/// `{ClassName, Message}`: the class as a (bounded) atom, `str(exc)` as a Unicode charlist
/// of at most `MESSAGE_MAX_CHARS` characters (2.3.1's shape); with details asked for,
/// `{ClassName, Message, Details}` (see `details`). Either way the traceback goes to the
/// output handler, which logs it at debug level.
pub fn exception_to_term<'a>(py: Python<'_>, env: Env<'a>, err: &PyErr, site: &Site) -> Term<'a> {
    let class = err.get_type(py).name().map(|n| n.to_string()).unwrap_or_else(|_| "Exception".to_string());
    let message = err
        .value(py)
        .str()
        .or_else(|_| message_arg(err.value(py)))
        .and_then(|s| cut_text(&s, MESSAGE_MAX_CHARS))
        .unwrap_or_default();
    let traceback = format_traceback(py, err);
    let qualified = qualified_class(py, err).unwrap_or_else(|_| class.clone());
    send_traceback(&traceback, &qualified, site);
    let chars: Vec<u32> = message.chars().map(|c| c as u32).collect();
    if !site.details {
        return (bounded_atom(env, &class), chars).encode(env);
    }
    let details = details(py, env, err, &qualified, &message, &traceback);
    (bounded_atom(env, &class), chars, details).encode(env)
}

/// `#{class, message, traceback, frames, attributes}`: the module-qualified class and the
/// message as UTF-8 binaries (readable under `~tp`), the formatted traceback, its frames
/// as `#{file, line, function}` (innermost last) and the exception's own attributes
/// (`__dict__`, names as binaries, values converted as results are).
fn details<'a>(py: Python<'_>, env: Env<'a>, err: &PyErr, class: &str, message: &str, traceback: &str) -> Term<'a> {
    let text = |s: &str| py_bytes_to_binary(env, s.as_bytes());
    let mut map = Term::map_new(env);
    let entries = [
        ("class", text(class)),
        ("message", text(message)),
        ("traceback", text(traceback)),
        ("frames", frames(py, env, err).unwrap_or_else(|_| Vec::<Term>::new().encode(env))),
        ("attributes", attributes(py, env, err).unwrap_or_else(|_| Term::map_new(env))),
    ];
    for (key, value) in entries {
        let key = rustler::types::atom::Atom::from_str(env, key).unwrap().encode(env);
        map = map.map_put(key, value).unwrap_or(map);
    }
    map
}

/// `module.QualName`, as Python's traceback names it (bare for `builtins` and `__main__`).
fn qualified_class(py: Python<'_>, err: &PyErr) -> PyResult<String> {
    let ty = err.get_type(py);
    let name: String = ty.getattr("__qualname__")?.extract()?;
    let module: String = ty.getattr("__module__")?.extract()?;
    Ok(match module.as_str() {
        "builtins" | "__main__" => name,
        _ => format!("{module}.{name}"),
    })
}

fn frames<'a>(py: Python<'_>, env: Env<'a>, err: &PyErr) -> PyResult<Term<'a>> {
    let Some(tb) = err.traceback(py) else { return Ok(Vec::<Term>::new().encode(env)) };
    let summary = py.import("traceback")?.call_method1("extract_tb", (tb, -TRACEBACK_MAX_FRAMES))?;
    let mut out = Vec::new();
    for frame in summary.try_iter()? {
        let frame = frame?;
        let file: String = frame.getattr("filename")?.extract()?;
        let line: Option<i64> = frame.getattr("lineno")?.extract()?;
        let function: String = frame.getattr("name")?.extract()?;
        let mut map = Term::map_new(env);
        for (key, value) in [
            ("file", py_bytes_to_binary(env, file.as_bytes())),
            ("line", line.map(|l| l.encode(env)).unwrap_or_else(|| atoms::undefined().encode(env))),
            ("function", py_bytes_to_binary(env, function.as_bytes())),
        ] {
            let key = rustler::types::atom::Atom::from_str(env, key).unwrap().encode(env);
            map = map.map_put(key, value).unwrap_or(map);
        }
        out.push(map);
    }
    Ok(out.encode(env))
}

/// The exception's `__dict__` as a map; a value that does not convert is its `repr()`.
fn attributes<'a>(py: Python<'_>, env: Env<'a>, err: &PyErr) -> PyResult<Term<'a>> {
    let mut map = Term::map_new(env);
    let Ok(dict) = err.value(py).getattr("__dict__") else { return Ok(map) };
    let dict = dict.cast_into::<PyDict>()?;
    // A copy of the items: converting a value may run its `__str__`/`__repr__`, which may
    // change the dict, and pyo3's iterator panics at a dict that changed size.
    for item in dict.items().iter().take(MAX_ATTRIBUTES) {
        let (key, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
        let Ok(key) = key.cast_into::<PyString>() else { continue };
        let key = py_bytes_to_binary(env, cut_text(&key, NAME_MAX_CHARS)?.as_bytes());
        let value = match py_to_term(env, &value) {
            Ok(term) => term,
            Err(_) => {
                let repr = value.repr().and_then(|r| cut_text(&r, MESSAGE_MAX_CHARS)).unwrap_or_default();
                py_bytes_to_binary(env, repr.as_bytes())
            }
        };
        map = map.map_put(key, value).unwrap_or(map);
    }
    Ok(map)
}

/// The text an exception was raised with, read without calling `str()`: from CPython
/// 3.12 on, past the C recursion limit (a deep `erlang.call` chain) `str(exc)` fails with
/// a `RecursionError` of its own, and the message would be lost.
fn message_arg<'py>(exc: &Bound<'py, pyo3::exceptions::PyBaseException>) -> PyResult<Bound<'py, PyString>> {
    let args = exc.getattr("args")?;
    Ok(args.cast::<PyTuple>()?.get_item(0)?.cast_into::<PyString>()?)
}

/// `text` when it has at most `max` characters; else its start and a note of the cut,
/// `max` characters in all. Only the kept part is copied out of Python.
pub fn cut_text(text: &Bound<'_, PyString>, max: usize) -> PyResult<String> {
    let len = text.len()?;
    if len <= max {
        return Ok(text.to_string_lossy().into_owned());
    }
    let note = format!("... ({len} characters, cut)");
    let keep = max.saturating_sub(note.chars().count());
    let head = text.get_item(pyo3::types::PySlice::new(text.py(), 0, keep as isize, 1))?;
    Ok(head.cast::<PyString>()?.to_string_lossy().into_owned() + &note)
}

/// The traceback as Python prints it, with every frame's file (`<erlang>` for code given
/// to `py:exec`/`py:eval`), the innermost `TRACEBACK_MAX_FRAMES` frames at most.
fn format_traceback(py: Python<'_>, err: &PyErr) -> String {
    let kwargs = PyDict::new(py);
    kwargs
        .set_item("limit", -TRACEBACK_MAX_FRAMES)
        .and_then(|_| py.import("traceback"))
        // The traceback is passed on its own: before Python 3.12 a fetched error keeps it
        // apart from the value, whose `__traceback__` may still be unset.
        .and_then(|tb| {
            let args = (err.get_type(py), err.value(py), err.traceback(py));
            tb.getattr("format_exception")?.call(args, Some(&kwargs))
        })
        .and_then(|lines| "".into_bound_py_any(py)?.call_method1("join", (lines,)))
        .and_then(|s| cut_text(s.cast::<PyString>()?, TRACEBACK_MAX_CHARS))
        // Formatting itself can fail (a broken `__str__`): still say what happened.
        .unwrap_or_else(|_| format!("{}: (traceback unavailable)\n", type_name(py, err)))
}

/// `{py_traceback, Caller, Text, Meta}` to the output handler; `Meta` is
/// `#{request, module, function, context, class}` (`undefined` where unknown).
fn send_traceback(text: &str, class: &str, site: &Site) {
    let context = CONTEXT.with(|c| c.get());
    crate::output::send_to_output_handler(crate::output::Payload::Record, text.len(), |e, who| {
        let undefined = || atoms::undefined().encode(e);
        let name = |n: &Option<String>| n.as_deref().map(|s| py_bytes_to_binary(e, s.as_bytes())).unwrap_or_else(undefined);
        let mut meta = Term::map_new(e);
        for (key, value) in [
            ("request", rustler::types::atom::Atom::from_str(e, site.kind).unwrap().encode(e)),
            ("module", name(&site.module)),
            ("function", name(&site.function)),
            ("context", context.map(|p| p.encode(e)).unwrap_or_else(undefined)),
            ("class", py_bytes_to_binary(e, class.as_bytes())),
        ] {
            let key = rustler::types::atom::Atom::from_str(e, key).unwrap().encode(e);
            meta = meta.map_put(key, value).unwrap_or(meta);
        }
        // Who made the request, also when it runs on the loop, where no caller is current.
        let caller = site.caller.map(|p| p.encode(e)).unwrap_or(who);
        (atoms::py_traceback(), caller, py_bytes_to_binary(e, text.as_bytes()), meta).encode(e)
    });
}

/// Log `err`, which has no caller to go to (it escaped the event loop); never exits.
pub fn log_exception(py: Python<'_>, err: &PyErr) {
    let text = format_traceback(py, err);
    let class = qualified_class(py, err).unwrap_or_else(|_| type_name(py, err));
    send_traceback(&text, &class, &Site::loose());
}

fn type_name(py: Python<'_>, err: &PyErr) -> String {
    err.get_type(py).name().map(|n| n.to_string()).unwrap_or_else(|_| "exception".into())
}

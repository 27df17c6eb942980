//! The Python types that stand for Erlang values and errors: `erlang.Pid`, `erlang.Ref`,
//! `erlang.Atom` (defined by the shim, looked up here) and the exceptions `Interrupted`,
//! `ErlangError` and `ProcessError`. A leaf: conversions and the actors use these, and
//! nothing here reaches back into them.

use pyo3::prelude::*;
use pyo3::types::PyType;

pyo3::create_exception!(
    erlang,
    Interrupted,
    pyo3::exceptions::PyBaseException,
    "Raised inside Python code whose Erlang caller gave up (timeout or cancel)."
);

pyo3::create_exception!(
    erlang,
    ErlangError,
    pyo3::exceptions::PyException,
    "An Erlang function called from Python failed; `reason` holds the Erlang reason."
);

pyo3::create_exception!(
    erlang,
    ProcessError,
    pyo3::exceptions::PyException,
    "The Erlang process a message or call was meant for is not alive."
);

/// An Erlang process identifier. Hashable, comparable, and converts back to the same pid.
#[pyclass(module = "erlang", name = "Pid", frozen, eq, hash)]
#[derive(PartialEq, Eq, Hash)]
pub struct Pid {
    etf: Vec<u8>,
}

/// An Erlang reference. Hashable, comparable, and converts back to the same reference.
#[pyclass(module = "erlang", name = "Ref", frozen, eq, hash)]
#[derive(PartialEq, Eq, Hash)]
pub struct Ref {
    etf: Vec<u8>,
}

impl Pid {
    pub fn from_etf(etf: Vec<u8>) -> Pid {
        Pid { etf }
    }
    pub fn etf(&self) -> &[u8] {
        &self.etf
    }
}

impl Ref {
    pub fn from_etf(etf: Vec<u8>) -> Ref {
        Ref { etf }
    }
    pub fn etf(&self) -> &[u8] {
        &self.etf
    }
}

#[pymethods]
impl Pid {
    pub fn __repr__(&self) -> String {
        match pid_numbers(&self.etf) {
            Some((id, serial)) => format!("<erlang.Pid <0.{id}.{serial}>>"),
            None => "<erlang.Pid>".to_string(),
        }
    }
}

#[pymethods]
impl Ref {
    fn __repr__(&self) -> String {
        let tail: String = self.etf.iter().rev().take(6).map(|b| format!("{b:02x}")).collect();
        format!("<erlang.Ref {tail}>")
    }
}

/// The process number and serial of a pid in the external term format.
fn pid_numbers(etf: &[u8]) -> Option<(u32, u32)> {
    let tag = *etf.get(1)?;
    if tag != 88 && tag != 103 {
        return None;
    }
    let after_node = match *etf.get(2)? {
        118 => 5 + u16::from_be_bytes(etf.get(3..5)?.try_into().ok()?) as usize,
        119 => 4 + *etf.get(3)? as usize,
        100 => 5 + u16::from_be_bytes(etf.get(3..5)?.try_into().ok()?) as usize,
        _ => return None,
    };
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(etf.get(at..at + 4)?.try_into().ok()?))
    };
    Some((word(after_node)?, word(after_node + 4)?))
}

thread_local! {
    /// `erlang.Atom` as the context running on this thread found it at start-up (each
    /// context thread belongs to one interpreter, so this is never another's object).
    static CONTEXT_ATOM_TYPE: std::cell::RefCell<Option<Py<PyType>>> = const { std::cell::RefCell::new(None) };
}

/// A context thread keeps `erlang.Atom` while it runs (`None` when it leaves).
pub fn set_context_atom_type(atom_type: Option<Py<PyType>>) {
    let previous = CONTEXT_ATOM_TYPE.with(|t| t.replace(atom_type));
    drop(previous);
}

/// The class the shim defines for `erlang.Atom` (a `str` subclass), as the interpreter
/// running this thread has it: a context keeps the one it found at start-up; other
/// threads (the user's, converting an argument of `erlang.call`) look it up each time,
/// which only `str` subclasses need (see `convert::to_term`).
pub fn atom_type(py: Python<'_>) -> Bound<'_, PyType> {
    let kept = CONTEXT_ATOM_TYPE.with(|t| t.borrow().as_ref().map(|a| a.bind(py).clone()));
    kept.unwrap_or_else(|| lookup_atom_type(py))
}

/// `erlang.Atom` looked up now.
pub fn lookup_atom_type(py: Python<'_>) -> Bound<'_, PyType> {
    py.import("erlang")
        .and_then(|m| m.getattr("Atom"))
        .and_then(|a| Ok(a.cast_into::<PyType>()?))
        // Before the shim is installed nothing is an Atom: a type no str is an instance of.
        .unwrap_or_else(|_| py.get_type::<Interrupted>())
}

/// A dictionary shared between Erlang and Python (`py:shared_dict_new/0`). Keys and
/// values are converted like call arguments; the dictionary is gone once its Erlang owner
/// exits or it is destroyed, after which any use raises `RuntimeError`.
/// (Its methods are in `state_py`, with the shared state's other Python functions.)
#[pyclass(module = "erlang", name = "SharedDict", frozen)]
pub struct SharedDict {
    pub handle: rustler::ResourceArc<crate::state::SharedDictRes>,
}

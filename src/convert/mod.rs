//! Conversion between Erlang terms and Python objects (the tables in docs/conversion.md).

mod arrays;
mod atoms;
mod bigint;
mod depth;
mod to_py;
mod to_term;

pub use atoms::{atom_text, bounded_atom, existing_atom, set_atom_limit};
pub use depth::remaining_stack;
pub use to_py::{error_reason_to_py, term_to_py, term_to_py_str};
pub use to_term::{bytes_to_binary as py_bytes_to_binary, py_to_term, py_to_term_with};

use crate::msg_env::RawTerm;
use pyo3::PyErr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

rustler::atoms! { complex, unconvertible, py_array }

/// The elements of a proper list; `None` for anything else. rustler's list decoding
/// (`Vec<T>`, `ListIterator`) panics at an improper tail such as `[1 | 2]`, and on a
/// context thread a panic ends the context: lists that come from a caller are taken
/// apart here (or checked with `list_length` first, which refuses improper lists).
pub fn proper_list(term: rustler::Term) -> Option<Vec<rustler::Term>> {
    let len = term.list_length().ok()?;
    let iter: rustler::ListIterator = term.decode().ok()?;
    let mut items = Vec::with_capacity(len);
    items.extend(iter);
    Some(items)
}

/// Deepest nesting either direction converts before answering `nesting_too_deep`.
static MAX_NESTING: AtomicUsize = AtomicUsize::new(20_000);

pub fn set_max_nesting(depth: usize) {
    MAX_NESTING.store(depth.max(1), Ordering::Relaxed);
}

pub fn max_nesting() -> usize {
    MAX_NESTING.load(Ordering::Relaxed)
}

/// The app env `strict_conversion`: whether a request's result is converted strictly
/// when the request does not say.
static STRICT_DEFAULT: AtomicBool = AtomicBool::new(false);

pub fn set_strict_default(strict: bool) {
    STRICT_DEFAULT.store(strict, Ordering::Relaxed);
}

/// How a request's result becomes a term (docs/conversion.md, "Options").
#[derive(Clone, Copy, Default, PartialEq, Debug)]
pub struct ConvOpts {
    /// A value with no Erlang counterpart fails with `{unconvertible, TypeName}` instead
    /// of becoming its `str()`, and `complex` becomes `{complex, Re, Im}`.
    pub strict: bool,
    /// A numeric array (buffer protocol or `__array__`) becomes
    /// `{py_array, DType, Shape, Binary}` instead of nested lists.
    pub arrays: bool,
}

impl ConvOpts {
    /// What a request that gives no options gets: the app env's strictness, lists.
    pub fn for_results() -> ConvOpts {
        ConvOpts { strict: STRICT_DEFAULT.load(Ordering::Relaxed), arrays: false }
    }
}

/// Why a value could not cross.
pub enum ConvError {
    /// A term Python has no counterpart for (fun, port, remote pid, improper list, bitstring).
    Unsupported(RawTerm),
    TooDeep(usize),
    /// Strict mode: a Python value of this type (module-qualified name) has no Erlang
    /// counterpart.
    Unconvertible(String),
    Python(PyErr),
}

impl From<PyErr> for ConvError {
    fn from(e: PyErr) -> Self {
        ConvError::Python(e)
    }
}

/// A failed conversion as the Python exception raised where Python asked for it.
pub fn conv_to_py(e: ConvError) -> pyo3::PyErr {
    match e {
        ConvError::Python(err) => err,
        ConvError::TooDeep(max) => pyo3::exceptions::PyValueError::new_err(format!("nesting deeper than {max} levels")),
        ConvError::Unsupported(_) => pyo3::exceptions::PyTypeError::new_err("a value has no Erlang counterpart"),
        ConvError::Unconvertible(name) => pyo3::exceptions::PyTypeError::new_err(format!("{name} has no Erlang counterpart")),
    }
}

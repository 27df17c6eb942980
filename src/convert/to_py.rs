//! Erlang term -> Python object.

use super::bigint::big_term_to_py;
use super::depth::nested;
use super::ConvError;
use crate::mailbox::handles::PyRefRes;
use crate::state::SharedDictRes;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use pyo3::IntoPyObjectExt;
use rustler::types::tuple::get_tuple;
use rustler::{Binary, LocalPid, MapIterator, ResourceArc, Term, TermType};

/// What to do with a sub-term Python has no counterpart for.
#[derive(Clone, Copy, PartialEq)]
enum Unsupported {
    Fail,
    /// Put its printed text (a `str`) in its place.
    Print,
}

/// Longest printed text that stands for an unsupported sub-term.
const PRINTED_MAX_CHARS: usize = 1024;

pub fn term_to_py<'py>(py: Python<'py>, term: Term) -> Result<Bound<'py, PyAny>, ConvError> {
    convert(py, term, Unsupported::Fail)
}

/// An Erlang error reason (`erlang.ErlangError.reason`): like `term_to_py`, but a fun,
/// port, remote pid, bitstring or improper list becomes its printed text (at most 1,024
/// characters) instead of failing, and atoms other than `true`, `false`, `none`, `nil` and
/// `undefined` become `erlang.Atom` (a `str`), so `{badkey, zz}` reads
/// `(erlang.Atom('badkey'), erlang.Atom('zz'))` and still equals `("badkey", "zz")`. For
/// values that describe something rather than data to compute with.
pub fn error_reason_to_py<'py>(py: Python<'py>, term: Term) -> Result<Bound<'py, PyAny>, ConvError> {
    convert(py, term, Unsupported::Print)
}

fn convert<'py>(py: Python<'py>, term: Term, mode: Unsupported) -> Result<Bound<'py, PyAny>, ConvError> {
    nested(|| match convert_level(py, term, mode) {
        Err(ConvError::Unsupported(_)) if mode == Unsupported::Print => Ok(printed(py, term)),
        other => other,
    })
}

/// The term as Erlang prints it (`enif_snprintf`'s `%T`), cut to `PRINTED_MAX_CHARS`.
fn printed<'py>(py: Python<'py>, term: Term) -> Bound<'py, PyAny> {
    let text = format!("{term:?}");
    let cut: String = text.chars().take(PRINTED_MAX_CHARS).collect();
    PyString::new(py, &cut).into_any()
}

fn convert_level<'py>(py: Python<'py>, term: Term, mode: Unsupported) -> Result<Bound<'py, PyAny>, ConvError> {
    let unsupported = || ConvError::Unsupported(term.as_c_arg());
    Ok(match term.get_type() {
        TermType::Atom if mode == Unsupported::Print => reason_atom_to_py(py, term)?,
        TermType::Atom => atom_to_py(py, term),
        TermType::Integer => {
            if let Ok(i) = term.decode::<i64>() {
                i.into_bound_py_any(py)?
            } else if let Ok(u) = term.decode::<u64>() {
                u.into_bound_py_any(py)?
            } else {
                big_term_to_py(py, term).ok_or_else(unsupported)?
            }
        }
        TermType::Float => term.decode::<f64>().map_err(|_| unsupported())?.into_bound_py_any(py)?,
        TermType::Binary => {
            let bin: Binary = term.decode().map_err(|_| unsupported())?;
            binary_to_py(py, bin.as_slice())
        }
        TermType::List => {
            let len = term.list_length().map_err(|_| unsupported())?;
            let mut items = Vec::with_capacity(len);
            let iter: rustler::ListIterator = term.decode().map_err(|_| unsupported())?;
            for item in iter {
                items.push(convert(py, item, mode)?);
            }
            PyList::new(py, items)?.into_any()
        }
        TermType::Tuple => {
            let elems = get_tuple(term).map_err(|_| unsupported())?;
            if let [tag, payload] = elems.as_slice() {
                if tag.decode::<rustler::Atom>().ok() == Some(crate::atoms::bytes()) {
                    if let Ok(bin) = payload.decode::<Binary>() {
                        return Ok(PyBytes::new(py, bin.as_slice()).into_any());
                    }
                }
            }
            let mut items = Vec::with_capacity(elems.len());
            for e in elems {
                items.push(convert(py, e, mode)?);
            }
            PyTuple::new(py, items)?.into_any()
        }
        TermType::Map => {
            let dict = PyDict::new(py);
            let iter = MapIterator::new(term).ok_or_else(unsupported)?;
            for (k, v) in iter {
                let key = convert(py, k, mode)?;
                let value = convert(py, v, mode)?;
                dict.set_item(key, value)?;
            }
            dict.into_any()
        }
        TermType::Pid => {
            term.decode::<LocalPid>().map_err(|_| unsupported())?;
            crate::pytypes::new_pid(py, term.to_binary().as_slice())?
        }
        TermType::Ref => {
            if let Ok(r) = term.decode::<ResourceArc<PyRefRes>>() {
                // An object lives in one interpreter: a ref made by a context in another
                // (a sub-interpreter's) cannot be an argument here.
                if !r.of_this_interpreter(py) {
                    return Err(ConvError::Python(pyo3::exceptions::PyValueError::new_err(
                        "a py ref made in another interpreter cannot be used here (sub-interpreter contexts do not share objects)",
                    )));
                }
                r.object(py).ok_or_else(unsupported)?
            } else if let Ok(handle) = term.decode::<ResourceArc<SharedDictRes>>() {
                crate::pytypes::new_shared_dict(py, handle)?
            } else {
                crate::pytypes::new_ref(py, term.to_binary().as_slice())?
            }
        }
        _ => return Err(unsupported()),
    })
}

/// An atom of an error reason: `erlang.Atom`, but for the names `atom_to_py` maps to
/// `True`, `False` and `None`.
fn reason_atom_to_py<'py>(py: Python<'py>, term: Term) -> PyResult<Bound<'py, PyAny>> {
    let name = super::atom_text(term).unwrap_or_default();
    match name.as_str() {
        "true" | "false" | "none" | "nil" | "undefined" => Ok(atom_to_py(py, term)),
        _ => crate::interp_kit::get(py, crate::interp_kit::Class::Atom)?.call1((name,)),
    }
}

fn atom_to_py<'py>(py: Python<'py>, term: Term) -> Bound<'py, PyAny> {
    let name = super::atom_text(term).unwrap_or_default();
    match name.as_str() {
        "true" => true.into_bound_py_any(py).unwrap(),
        "false" => false.into_bound_py_any(py).unwrap(),
        "none" | "nil" | "undefined" => py.None().into_bound(py),
        _ => PyString::new(py, &name).into_any(),
    }
}

/// Valid UTF-8 becomes `str`, anything else `bytes`.
pub fn binary_to_py<'py>(py: Python<'py>, data: &[u8]) -> Bound<'py, PyAny> {
    match std::str::from_utf8(data) {
        Ok(text) => PyString::new(py, text).into_any(),
        Err(_) => PyBytes::new(py, data).into_any(),
    }
}

/// A name given as an atom, a binary or a charlist (module, function, attribute names).
pub fn term_to_py_str(term: Term) -> Option<String> {
    match term.get_type() {
        TermType::Atom => super::atom_text(term),
        TermType::Binary => {
            let bin: Binary = term.decode().ok()?;
            String::from_utf8(bin.as_slice().to_vec()).ok()
        }
        TermType::List => {
            let codes = super::proper_list(term)?;
            codes.into_iter().map(|c| c.decode::<u32>().ok().and_then(char::from_u32)).collect()
        }
        _ => None,
    }
}

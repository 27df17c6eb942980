//! The shared state as Python sees it: `erlang.state_get` and friends, and
//! `erlang.SharedDict` (a mapping). Keys and values cross as terms, so Python and Erlang
//! read and write the same entries: a Python `str` key is the Erlang binary.

use crate::convert::conv_to_py;
use crate::convert::{py_to_term, term_to_py};
use crate::msg_env::MsgEnv;
use crate::pytypes::{shared_dict_capsule, shared_dict_handle};
use crate::state::SharedDictRes;
use crate::state::{key_of, IncrError, Stored, Table, GLOBAL};
use pyo3::exceptions::{PyKeyError, PyOverflowError, PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyList};
use rustler::ResourceArc;

/// Run `f` in a scratch environment: this thread's spare one when it has one (allocating
/// an environment per read or write would dominate the cost of small entries).
fn scratch<R>(f: impl for<'a> FnOnce(rustler::Env<'a>) -> R) -> R {
    let env = MsgEnv::reuse_or_new();
    let result = env.with(f);
    env.recycle();
    result
}

fn to_key(value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    scratch(|e| Ok(key_of(py_to_term(e, value).map_err(conv_to_py)?)))
}

/// Run `f` with `key` as a term (in a scratch environment).
fn with_key<R>(key: &Bound<'_, PyAny>, f: impl for<'a> FnOnce(rustler::Term<'a>) -> R) -> PyResult<R> {
    scratch(|e| Ok(f(py_to_term(e, key).map_err(conv_to_py)?)))
}

fn to_stored(value: &Bound<'_, PyAny>) -> PyResult<Stored> {
    scratch(|e| Ok(Stored::from_term(py_to_term(e, value).map_err(conv_to_py)?)))
}

/// Terms whose encoding holds a big map or a fun are `Stored::Term` copies, so decoding
/// here (a process-independent environment) only ever meets terms it can decode.
fn to_py<'py>(py: Python<'py>, stored: &Stored) -> PyResult<Bound<'py, PyAny>> {
    scratch(|e| term_to_py(py, stored.to_term(e)).map_err(conv_to_py))
}

fn keys_to_py<'py>(py: Python<'py>, table: &Table) -> PyResult<Bound<'py, PyList>> {
    let keys = table.keys();
    let items = keys.iter().map(|k| to_py(py, k)).collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

/// The `amount` of `state_incr`/`state_decr` (1 when not given), read here rather than by
/// pyo3 (see `py_args`).
fn amount_of(amount: Option<&Bound<'_, PyAny>>) -> PyResult<i64> {
    amount.map_or(Ok(1), |a| a.extract())
}

fn incr_error(e: IncrError) -> PyErr {
    match e {
        IncrError::NotAnInteger => PyTypeError::new_err("the stored value is not an integer"),
        IncrError::Overflow => PyOverflowError::new_err("counter out of 64-bit range"),
    }
}

/// The value stored under `key` in the shared state, or `default`.
#[pyfunction]
#[pyo3(signature = (key, default=None))]
pub fn state_get<'py>(py: Python<'py>, key: &Bound<'py, PyAny>, default: Option<Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    match GLOBAL.fetch(&to_key(key)?) {
        Some(stored) => to_py(py, &stored),
        None => Ok(default.unwrap_or_else(|| py.None().into_bound(py))),
    }
}

/// Store `value` under `key` (visible to `py:state_fetch/1`).
#[pyfunction]
pub fn state_set(key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
    let value = to_stored(value)?;
    with_key(key, |k| GLOBAL.store(k, value))?;
    Ok(())
}

/// Remove `key` (no error when it is missing).
#[pyfunction]
pub fn state_delete(key: &Bound<'_, PyAny>) -> PyResult<()> {
    GLOBAL.remove(&to_key(key)?);
    Ok(())
}

#[pyfunction]
pub fn state_keys(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    keys_to_py(py, &GLOBAL)
}

#[pyfunction]
pub fn state_clear() {
    GLOBAL.clear();
}

/// Atomically add `amount` to the integer under `key` (missing counts as 0).
#[pyfunction]
#[pyo3(signature = (key, amount=None))]
pub fn state_incr(key: &Bound<'_, PyAny>, amount: Option<&Bound<'_, PyAny>>) -> PyResult<i64> {
    let amount = amount_of(amount)?;
    with_key(key, |k| GLOBAL.incr(k, amount))?.map_err(incr_error)
}

/// Atomically subtract `amount` from the integer under `key` (missing counts as 0).
#[pyfunction]
#[pyo3(signature = (key, amount=None))]
pub fn state_decr(key: &Bound<'_, PyAny>, amount: Option<&Bound<'_, PyAny>>) -> PyResult<i64> {
    let amount = amount_of(amount)?;
    let negated = amount.checked_neg().ok_or_else(|| PyOverflowError::new_err("amount out of range"))?;
    with_key(key, |k| GLOBAL.incr(k, negated))?.map_err(incr_error)
}


/// The table behind a shared dict's handle (the capsule an `erlang.SharedDict` wraps).
fn table_of(handle: &Bound<'_, PyAny>) -> PyResult<ResourceArc<SharedDictRes>> {
    let handle = shared_dict_handle(handle)?;
    if handle.live().is_none() {
        return Err(PyRuntimeError::new_err("this SharedDict was destroyed"));
    }
    Ok(handle)
}

fn live(handle: &ResourceArc<SharedDictRes>) -> PyResult<&Table> {
    handle.live().ok_or_else(|| PyRuntimeError::new_err("this SharedDict was destroyed"))
}

/// A handle of a new dictionary with no Erlang owner (it lives while referenced):
/// `erlang.SharedDict()`.
#[pyfunction]
pub fn _shared_dict_new(py: Python<'_>) -> PyResult<Bound<'_, PyCapsule>> {
    shared_dict_capsule(py, ResourceArc::new(SharedDictRes::default()))
}

#[pyfunction]
pub fn _shared_dict_getitem<'py>(py: Python<'py>, handle: &Bound<'py, PyAny>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let dict = table_of(handle)?;
    match live(&dict)?.fetch(&to_key(key)?) {
        Some(stored) => to_py(py, &stored),
        None => Err(PyKeyError::new_err(key.clone().unbind())),
    }
}

#[pyfunction]
pub fn _shared_dict_setitem(handle: &Bound<'_, PyAny>, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
    let dict = table_of(handle)?;
    let value = to_stored(value)?;
    let table = live(&dict)?;
    with_key(key, |k| table.store(k, value))?;
    Ok(())
}

#[pyfunction]
pub fn _shared_dict_delitem(handle: &Bound<'_, PyAny>, key: &Bound<'_, PyAny>) -> PyResult<()> {
    let dict = table_of(handle)?;
    let key_bytes = to_key(key)?;
    if live(&dict)?.remove(&key_bytes) {
        Ok(())
    } else {
        Err(PyKeyError::new_err(key.clone().unbind()))
    }
}

#[pyfunction]
pub fn _shared_dict_contains(handle: &Bound<'_, PyAny>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
    let dict = table_of(handle)?;
    let key = to_key(key)?;
    Ok(live(&dict)?.fetch(&key).is_some())
}

#[pyfunction]
pub fn _shared_dict_len(handle: &Bound<'_, PyAny>) -> PyResult<usize> {
    Ok(live(&table_of(handle)?)?.len())
}

#[pyfunction]
pub fn _shared_dict_keys<'py>(py: Python<'py>, handle: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
    keys_to_py(py, live(&table_of(handle)?)?)
}

#[pyfunction]
pub fn _shared_dict_items<'py>(py: Python<'py>, handle: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
    let dict = table_of(handle)?;
    let mut pairs = Vec::new();
    for (key, value) in live(&dict)?.items() {
        pairs.push((to_py(py, &key)?, to_py(py, &value)?));
    }
    PyList::new(py, pairs)
}

#[pyfunction]
#[pyo3(signature = (handle, key, default=None))]
pub fn _shared_dict_get<'py>(py: Python<'py>, handle: &Bound<'py, PyAny>, key: &Bound<'py, PyAny>, default: Option<Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    let dict = table_of(handle)?;
    match live(&dict)?.fetch(&to_key(key)?) {
        Some(stored) => to_py(py, &stored),
        None => Ok(default.unwrap_or_else(|| py.None().into_bound(py))),
    }
}

#[pyfunction]
pub fn _shared_dict_repr(handle: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(match shared_dict_handle(handle)?.live() {
        Some(table) => format!("<erlang.SharedDict with {} entries>", table.len()),
        None => "<erlang.SharedDict (destroyed)>".to_string(),
    })
}

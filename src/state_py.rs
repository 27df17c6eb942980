//! The shared state as Python sees it: `erlang.state_get` and friends, and
//! `erlang.SharedDict` (a mapping). Keys and values cross as terms, so Python and Erlang
//! read and write the same entries: a Python `str` key is the Erlang binary.

use crate::convert::conv_to_py;
use crate::convert::{py_to_term, term_to_py};
use crate::msg_env::MsgEnv;
use crate::pytypes::SharedDict;
use crate::state::SharedDictRes;
use crate::state::{key_of, IncrError, Stored, Table, GLOBAL};
use pyo3::exceptions::{PyKeyError, PyOverflowError, PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyList;
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
#[pyo3(signature = (key, amount=1))]
pub fn state_incr(key: &Bound<'_, PyAny>, amount: i64) -> PyResult<i64> {
    with_key(key, |k| GLOBAL.incr(k, amount))?.map_err(incr_error)
}

/// Atomically subtract `amount` from the integer under `key` (missing counts as 0).
#[pyfunction]
#[pyo3(signature = (key, amount=1))]
pub fn state_decr(key: &Bound<'_, PyAny>, amount: i64) -> PyResult<i64> {
    let negated = amount.checked_neg().ok_or_else(|| PyOverflowError::new_err("amount out of range"))?;
    with_key(key, |k| GLOBAL.incr(k, negated))?.map_err(incr_error)
}


impl SharedDict {
    fn table(&self) -> PyResult<&Table> {
        self.handle.live().ok_or_else(|| PyRuntimeError::new_err("this SharedDict was destroyed"))
    }
}

#[pymethods]
impl SharedDict {
    /// A new dictionary with no Erlang owner (it lives while referenced).
    #[new]
    fn new() -> SharedDict {
        SharedDict { handle: ResourceArc::new(SharedDictRes::default()) }
    }

    fn __getitem__<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        match self.table()?.fetch(&to_key(key)?) {
            Some(stored) => to_py(py, &stored),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    fn __setitem__(&self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let table = self.table()?;
        let value = to_stored(value)?;
        with_key(key, |k| table.store(k, value))?;
        Ok(())
    }

    fn __delitem__(&self, key: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.table()?.remove(&to_key(key)?) {
            Ok(())
        } else {
            Err(PyKeyError::new_err(key.clone().unbind()))
        }
    }

    fn __contains__(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.table()?.fetch(&to_key(key)?).is_some())
    }

    fn __len__(&self) -> PyResult<usize> {
        Ok(self.table()?.len())
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(keys_to_py(py, self.table()?)?.try_iter()?.into_any())
    }

    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        keys_to_py(py, self.table()?)
    }

    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = self.items(py)?;
        let values = items.iter().map(|pair| pair.get_item(1)).collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, values)
    }

    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let table = self.table()?;
        let mut pairs = Vec::new();
        for (key, value) in table.items() {
            pairs.push((to_py(py, &key)?, to_py(py, &value)?));
        }
        PyList::new(py, pairs)
    }

    #[pyo3(signature = (key, default=None))]
    fn get<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>, default: Option<Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        match self.table()?.fetch(&to_key(key)?) {
            Some(stored) => to_py(py, &stored),
            None => Ok(default.unwrap_or_else(|| py.None().into_bound(py))),
        }
    }

    fn __repr__(&self) -> String {
        match self.handle.live() {
            Some(table) => format!("<erlang.SharedDict with {} entries>", table.len()),
            None => "<erlang.SharedDict (destroyed)>".to_string(),
        }
    }
}

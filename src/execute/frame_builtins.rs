//! Builtins that read the caller's Python frame (`eval`, `exec`, `globals`, `locals`,
//! `vars`, `dir`), called straight from Erlang.
//!
//! `py:call(builtins, eval, [Code])` calls the builtin from C with no Python frame, where
//! it raises `SystemError`. From Erlang the caller's frame is, as a Python user would
//! expect, module-level code in the caller's process namespace: globals and locals are
//! both that namespace. Calls that name their own globals, or pass `vars` an object, keep
//! Python's meaning.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

pub struct FrameBuiltins {
    eval: Py<PyAny>,
    exec: Py<PyAny>,
    /// `globals`, `locals` and `vars`: with no arguments, the namespace itself.
    namespace_getters: [Py<PyAny>; 3],
    dir: Py<PyAny>,
}

impl FrameBuiltins {
    pub fn new(py: Python<'_>) -> PyResult<FrameBuiltins> {
        let builtins = py.import("builtins")?;
        let get = |name: &str| builtins.getattr(name).map(Bound::unbind);
        Ok(FrameBuiltins {
            eval: get("eval")?,
            exec: get("exec")?,
            namespace_getters: [get("globals")?, get("locals")?, get("vars")?],
            dir: get("dir")?,
        })
    }

    /// The result of `target(*args, **kwargs)` run against `ns` when `target` is one of
    /// these builtins; `None` for any other callable.
    pub fn call<'py>(
        &self,
        target: &Bound<'py, PyAny>,
        ns: &Bound<'py, PyDict>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> Option<PyResult<Bound<'py, PyAny>>> {
        let ptr = target.as_ptr();
        let no_arguments = args.is_empty() && kwargs.is_none_or(|k| k.is_empty());
        if ptr == self.eval.as_ptr() || ptr == self.exec.as_ptr() {
            return Some(with_namespace(args, kwargs, ns).and_then(|(a, k)| target.call(a, k.as_ref())));
        }
        if !no_arguments {
            return None;
        }
        if self.namespace_getters.iter().any(|f| f.as_ptr() == ptr) {
            return Some(Ok(ns.clone().into_any()));
        }
        if ptr == self.dir.as_ptr() {
            // `dir()` lists the names of the caller's scope, sorted.
            return Some(sorted_names(ns));
        }
        None
    }
}

/// The arguments of `eval`/`exec` with the namespace in place of globals that were left
/// out or given as `None` (which is what makes the builtin reach for the caller's frame).
/// Python then uses the globals as locals too, unless locals were given.
fn with_namespace<'py>(
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
    ns: &Bound<'py, PyDict>,
) -> PyResult<(Bound<'py, PyTuple>, Option<Bound<'py, PyDict>>)> {
    let py = args.py();
    let kwargs = kwargs.map(|k| k.copy()).transpose()?;
    if let Some(k) = &kwargs {
        if let Some(globals) = k.get_item("globals")? {
            if globals.is_none() {
                k.set_item("globals", ns)?;
            }
            return Ok((args.clone(), kwargs));
        }
    }
    let mut items: Vec<Bound<'py, PyAny>> = args.iter().collect();
    match items.len() {
        // No source: the builtin's own TypeError.
        0 => {}
        1 => items.push(ns.clone().into_any()),
        _ if items[1].is_none() => items[1] = ns.clone().into_any(),
        _ => {}
    }
    Ok((PyTuple::new(py, items)?, kwargs))
}

fn sorted_names<'py>(ns: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyAny>> {
    let names: Bound<'py, PyList> = ns.keys();
    names.sort()?;
    Ok(names.into_any())
}

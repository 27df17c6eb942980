//! `eval(Code, Locals)`: the caller's namespace as globals, the locals apart from it.
//!
//! Python's own `eval(code, globals, locals)` hides a separate locals mapping from nested
//! scopes: in `(lambda: x)()` or `[x * i for i in l]`, `x` is looked up in the globals only.
//! So an expression with nested scopes, where every key is a name Python accepts as a
//! parameter, is compiled as the body of a `lambda` taking the locals as parameters, and
//! that function is called with the namespace as its globals: nested scopes close over
//! the parameters, and `globals()` is the real namespace, so what the expression writes
//! there stays. Any other expression runs as Python's plain
//! `eval(code, namespace, locals)`, which is the same thing without nested scopes and
//! about twice as fast as making and calling a function.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyCode, PyDict, PyString, PyTuple};
use std::ffi::CString;

/// How an expression with a given set of local names is run.
pub enum LocalsCode {
    /// The body of a `lambda` whose parameters are the local names, in map order.
    Params(Py<PyCode>),
    /// The expression itself, run with a separate locals mapping.
    Mapping(Py<PyCode>),
}

/// The cache key of `text` with these locals: the text and the names, NUL-separated
/// (compiled source cannot hold a NUL). `Err(text)` when the text or a key holds a NUL,
/// or a key is no plain `str`, so that no two different name lists share a key.
pub fn cache_key(mut text: String, locals: &Bound<'_, PyDict>) -> Result<String, String> {
    // A NUL in the source is refused when it is compiled; it must not split the key.
    if text.contains('\0') {
        return Err(text);
    }
    let len = text.len();
    for (name, _) in locals.iter() {
        let name = name.cast_exact::<PyString>().ok();
        match name.as_ref().map(|n| n.to_str()) {
            Some(Ok(name)) if !name.contains('\0') => {
                text.push('\0');
                text.push_str(name);
            }
            _ => {
                text.truncate(len);
                return Err(text);
            }
        }
    }
    Ok(text)
}

/// The source text a cache key was made from.
pub fn key_text(key: &str) -> &str {
    key.split('\0').next().unwrap_or_default()
}

/// Compile the `lambda` form of `text` (already known to compile as an expression) for
/// the names in `key`, or give `None` when the expression has no nested scope or some
/// name cannot be a parameter.
pub fn compile_params<'py>(py: Python<'py>, key: &str) -> PyResult<Option<Bound<'py, PyCode>>> {
    let mut parts = key.split('\0');
    let text = parts.next().unwrap_or_default();
    let names: Vec<&str> = parts.collect();
    // The symbol table, not the code's constants: from Python 3.12 on, comprehensions are
    // inlined into the code but are still scopes of their own.
    let table = py.import("symtable")?.getattr("symtable")?.call1((text, "<erlang>", "eval"))?;
    if !table.call_method0("get_children")?.is_truthy()? {
        return Ok(None);
    }
    let keyword = py.import("keyword")?.getattr("iskeyword")?;
    for name in &names {
        // Checked before any name is pasted into source text: a key such as
        // "a=1" or "a): ..." must never change what the code means.
        let s = PyString::new(py, name);
        if !s.call_method0("isidentifier")?.is_truthy()? || keyword.call1((&s,))?.is_truthy()? || *name == "__debug__" {
            return Ok(None);
        }
    }
    // The text starts on the lambda's first line so that line numbers stay those of the
    // caller's source; the closing parenthesis goes on a line of its own, after any
    // trailing comment.
    let source = format!("lambda {}: ({}\n)", names.join(", "), text);
    let Ok(source) = CString::new(source) else { return Ok(None) };
    // Two keys that name the same parameter once normalised (NFKC) are a SyntaxError
    // here: those keys fall back to the mapping.
    let Ok(outer) = PyCode::compile(py, &source, c"<erlang>", pyo3::types::code::PyCodeInput::Eval) else {
        return Ok(None);
    };
    let consts = outer.getattr("co_consts")?;
    for item in consts.cast::<PyTuple>()?.iter() {
        if let Ok(code) = item.cast_into::<PyCode>() {
            return Ok(Some(code));
        }
    }
    Ok(None)
}

/// Run `code` for these locals with `globals` as the module globals.
pub fn run<'py>(py: Python<'py>, code: &LocalsCode, globals: &Bound<'py, PyDict>, locals: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyAny>> {
    match code {
        LocalsCode::Params(body) => {
            // PyFunction_New returns a new reference or NULL with an exception set, which
            // `from_owned_ptr_or_err` takes over.
            // SAFETY: `body` is a code object and `globals` a dict, both alive for the call.
            let function = unsafe {
                Bound::from_owned_ptr_or_err(py, ffi::PyFunction_New(body.bind(py).as_ptr(), globals.as_ptr()))?
            };
            // The dict's values are in the order its keys had when the key was built.
            let args = PyTuple::new(py, locals.iter().map(|(_, value)| value))?;
            function.call1(args)
        }
        LocalsCode::Mapping(expr) => super::run_code(py, expr.bind(py), globals, locals.as_any()),
    }
}

impl LocalsCode {
    pub fn clone_ref(&self, py: Python<'_>) -> LocalsCode {
        match self {
            LocalsCode::Params(c) => LocalsCode::Params(c.clone_ref(py)),
            LocalsCode::Mapping(c) => LocalsCode::Mapping(c.clone_ref(py)),
        }
    }
}

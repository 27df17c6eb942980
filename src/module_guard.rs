//! The `erlang` module and its pure-Python half cannot be imported a second time: the
//! native module is built once per interpreter (pyo3 refuses to initialise it again), and
//! the interpreter is never restarted. Python code that deletes them from `sys.modules`
//! would leave every later namespace without `erlang`, across application restarts. So
//! the module objects are remembered once Python is set up, and put back whenever a
//! context starts.
//!
//! They are remembered in the interpreter's own state dict (`PyInterpreterState_GetDict`),
//! not in a process-wide static: each interpreter keeps its own modules there, out of the
//! way of Python code that cleans up `sys.modules` or module globals.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

/// Key of the remembered `sys.modules` entries in the interpreter's state dict.
const INSTALLED_KEY: &str = "erlang_python.installed_modules";

/// The state dict of the interpreter running this thread.
fn interpreter_dict(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    // SAFETY: the GIL is held, so this thread has a current interpreter; its dict is a
    // borrowed reference that lives as long as the interpreter (NULL only on failure).
    let dict = unsafe {
        let ptr = pyo3::ffi::PyInterpreterState_GetDict(pyo3::ffi::PyInterpreterState_Get());
        Bound::from_borrowed_ptr_or_err(py, ptr)?
    };
    Ok(dict.cast_into::<PyDict>()?)
}

fn is_ours(name: &str) -> bool {
    name == "erlang" || name == "erlang_shim" || name.starts_with("erlang_shim.")
}

/// Remember the `erlang` modules now in `sys.modules` (after the shim is installed).
pub fn remember(py: Python<'_>) -> PyResult<()> {
    let modules = py.import("sys")?.getattr("modules")?;
    let ours = PyDict::new(py);
    for (name, module) in modules.cast::<PyDict>()?.iter() {
        if name.cast::<PyString>().is_ok_and(|n| n.to_str().is_ok_and(is_ours)) {
            ours.set_item(name, module)?;
        }
    }
    // Set once: a later start (there is none today) must not forget the first modules.
    let state = interpreter_dict(py)?;
    if !state.contains(INSTALLED_KEY)? {
        state.set_item(INSTALLED_KEY, ours)?;
    }
    Ok(())
}

/// Put back any remembered module that Python code removed or replaced.
pub fn restore(py: Python<'_>) -> PyResult<()> {
    let Some(installed) = interpreter_dict(py)?.get_item(INSTALLED_KEY)? else { return Ok(()) };
    let installed = installed.cast_into::<PyDict>()?;
    let modules = py.import("sys")?.getattr("modules")?;
    let modules = modules.cast::<PyDict>()?;
    for (name, module) in installed.iter() {
        let current = modules.get_item(&name)?;
        if !current.is_some_and(|c| c.is(&module)) {
            modules.set_item(name, module)?;
        }
    }
    Ok(())
}

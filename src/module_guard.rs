//! The `erlang` module and its pure-Python half cannot be imported a second time: the
//! native module is built once per interpreter (pyo3 refuses to initialise it again), and
//! the interpreter is never restarted. Python code that deletes them from `sys.modules`
//! would leave every later namespace without `erlang`, across application restarts. So
//! the module objects are remembered once Python is set up, and put back whenever a
//! context starts.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString};

/// `sys.modules` entries of the `erlang` package as set up at start-up.
static INSTALLED: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

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
    let _ = INSTALLED.set(py, ours.unbind());
    Ok(())
}

/// Put back any remembered module that Python code removed or replaced.
pub fn restore(py: Python<'_>) -> PyResult<()> {
    let Some(installed) = INSTALLED.get(py) else { return Ok(()) };
    let modules = py.import("sys")?.getattr("modules")?;
    let modules = modules.cast::<PyDict>()?;
    for (name, module) in installed.bind(py).iter() {
        let current = modules.get_item(&name)?;
        if !current.is_some_and(|c| c.is(&module)) {
            modules.set_item(name, module)?;
        }
    }
    Ok(())
}

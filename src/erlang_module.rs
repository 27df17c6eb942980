//! The native half of the `erlang` Python module (the functions that reach the VM: calls,
//! messages, output, logging, shared state, spans) and `install`, which prepares an
//! interpreter for contexts: this module, then the pure-Python half (python/erlang_shim)
//! with the classes Python sees, then the interpreter's registry of those classes.
//!
//! The module is a plain `PyModule` that `install` builds in each interpreter rather than
//! a pyo3 module definition: pyo3 refuses to initialise those in a second interpreter,
//! and a module added to the inittab is single-phase, which isolated interpreters refuse.
//! Its functions are static method definitions, which any interpreter may share.

use crate::interp_kit::{self, Class};
use crate::msg_env::{MsgEnv, OwnedTerm};
use crate::output::{send_to_output_handler, Payload};
use crate::py_args;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use rustler::{Encoder, LocalPid};

/// Where an interpreter finds the shim and the user's code.
pub struct InterpreterPaths<'a> {
    /// Directory holding the `erlang_shim` package.
    pub shim_dir: &'a str,
    /// Extra `sys.path` entries, put in front.
    pub python_path: &'a [String],
    /// A virtual environment whose site-packages come first on `sys.path`.
    pub venv: Option<&'a str>,
}

/// Prepare the interpreter running this thread for contexts: the ONE entry point for
/// that, for the main interpreter (`runtime`) and every sub-interpreter alike. It builds
/// this interpreter's `erlang` module and puts it in `sys.modules`, imports and installs
/// the shim (classes, output streams, paths), records the shim's classes in the
/// interpreter's kit (`interp_kit`) and remembers the modules for `module_guard`. Run it
/// once per interpreter, attached to it, before any context of it starts.
pub fn install(py: Python<'_>, paths: &InterpreterPaths<'_>) -> PyResult<()> {
    // Whichever thread imports threading first becomes its MainThread: make it this one.
    py.import("threading")?;
    let sys = py.import("sys")?;
    let path = sys.getattr("path")?.cast_into::<PyList>()?;
    path.insert(0, paths.shim_dir)?;
    let module = build(py)?;
    sys.getattr("modules")?.cast_into::<PyDict>()?.set_item("erlang", &module)?;
    let shim = py.import("erlang_shim")?;
    shim.call_method1("install", (paths.python_path.to_vec(), paths.venv))?;
    interp_kit::register(py, &shim.call_method0("_kit_types")?)?;
    crate::module_guard::remember(py)
}

/// A new `erlang` module with the native functions (the shim adds the rest).
fn build(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    use crate::spans_py as span;
    use crate::state_py as st;
    let m = PyModule::new(py, "erlang")?;
    let functions = [
        wrap_pyfunction!(_write, &m)?,
        wrap_pyfunction!(_flush, &m)?,
        wrap_pyfunction!(_log, &m)?,
        wrap_pyfunction!(call, &m)?,
        wrap_pyfunction!(async_call, &m)?,
        wrap_pyfunction!(_is_registered, &m)?,
        wrap_pyfunction!(send, &m)?,
        wrap_pyfunction!(whereis, &m)?,
        wrap_pyfunction!(_sleep, &m)?,
        wrap_pyfunction!(span::_span_start, &m)?,
        wrap_pyfunction!(span::_span_event, &m)?,
        wrap_pyfunction!(span::_span_set_attribute, &m)?,
        wrap_pyfunction!(span::_span_end, &m)?,
        wrap_pyfunction!(st::state_get, &m)?,
        wrap_pyfunction!(st::state_set, &m)?,
        wrap_pyfunction!(st::state_delete, &m)?,
        wrap_pyfunction!(st::state_keys, &m)?,
        wrap_pyfunction!(st::state_clear, &m)?,
        wrap_pyfunction!(st::state_incr, &m)?,
        wrap_pyfunction!(st::state_decr, &m)?,
        wrap_pyfunction!(st::_shared_dict_new, &m)?,
        wrap_pyfunction!(st::_shared_dict_getitem, &m)?,
        wrap_pyfunction!(st::_shared_dict_setitem, &m)?,
        wrap_pyfunction!(st::_shared_dict_delitem, &m)?,
        wrap_pyfunction!(st::_shared_dict_contains, &m)?,
        wrap_pyfunction!(st::_shared_dict_len, &m)?,
        wrap_pyfunction!(st::_shared_dict_keys, &m)?,
        wrap_pyfunction!(st::_shared_dict_items, &m)?,
        wrap_pyfunction!(st::_shared_dict_get, &m)?,
        wrap_pyfunction!(st::_shared_dict_repr, &m)?,
    ];
    for function in functions {
        m.add_function(function)?;
    }
    // Native code with no file, as the module was when it was compiled in: Python shows
    // it as `<module 'erlang' (built-in)>`.
    let spec = py.import("importlib.machinery")?.getattr("ModuleSpec")?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("origin", "built-in")?;
    m.setattr("__spec__", spec.call(("erlang", py.None()), Some(&kwargs))?)?;
    Ok(m)
}

/// Write Python output to the Erlang side: stream 1 is stdout, 2 is stderr.
#[pyfunction]
fn _write(py: Python<'_>, stream: &Bound<'_, PyAny>, text: &Bound<'_, PyAny>) -> PyResult<()> {
    let stream: u8 = stream.extract()?;
    let data = py_args::text(text, "_write() text")?.as_bytes().to_vec();
    py.detach(move || {
        send_to_output_handler(Payload::Output, data.len(), |e, who| {
            let tag = if stream == 2 { crate::atoms::stderr() } else { crate::atoms::stdout() };
            let bin = crate::convert::py_bytes_to_binary(e, &data);
            (crate::atoms::py_output(), who, tag, bin).encode(e)
        });
        crate::output::note_write(stream, &data);
    });
    Ok(())
}

/// Send the current caller's unfinished line now (`flush()` of stdout or stderr).
#[pyfunction]
fn _flush(py: Python<'_>) {
    py.detach(crate::output::flush_current);
}

/// Call the Erlang function registered as `name` (`py:register_function/2,3`) with
/// `args` and answer its result. An Erlang error raises `erlang.ErlangError`.
#[pyfunction]
#[pyo3(signature = (name, *args))]
fn call(py: Python<'_>, name: &Bound<'_, PyAny>, args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<Py<PyAny>> {
    let name = py_args::text(name, "call() name")?;
    ensure_registered(&name)?;
    crate::actors::callback::call_erlang(py, &name, args)
}

/// `NameError` for a name no Erlang function is registered under.
fn ensure_registered(name: &str) -> PyResult<()> {
    if crate::actors::callback::is_registered(name) {
        Ok(())
    } else {
        Err(pyo3::exceptions::PyNameError::new_err(format!(
            "no Erlang function is registered as '{name}'"
        )))
    }
}

/// Awaitable form of `call`: `await erlang.async_call(name, *args)` runs the Erlang
/// function without blocking the event loop.
#[pyfunction]
#[pyo3(signature = (name, *args))]
fn async_call(py: Python<'_>, name: &Bound<'_, PyAny>, args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<Py<PyAny>> {
    let name = py_args::text(name, "async_call() name")?;
    ensure_registered(&name)?;
    crate::actors::callback::async_call_erlang(py, &name, args)
}

/// Whether an Erlang function is registered under `name`.
#[pyfunction]
fn _is_registered(name: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(crate::actors::callback::is_registered(&py_args::text(name, "_is_registered() name")?))
}

/// Send `term` to the Erlang process `pid`; raises `erlang.ProcessError` if it is not alive.
#[pyfunction]
fn send(py: Python<'_>, pid: &Bound<'_, PyAny>, term: &Bound<'_, PyAny>) -> PyResult<()> {
    let Some(etf) = crate::pytypes::pid_etf(pid)? else {
        let kind = pid.get_type().name()?;
        return Err(pyo3::exceptions::PyTypeError::new_err(format!("send() pid must be erlang.Pid, not {kind}")));
    };
    let target = MsgEnv::reuse_or_new();
    let decoded = target.with(|e| e.binary_to_term(etf.as_bytes()).and_then(|(t, _)| t.decode::<LocalPid>().ok()));
    target.recycle();
    let target = decoded.ok_or_else(|| interp_kit::error(py, Class::ProcessError, "not a local pid"))?;
    let msg = OwnedTerm::try_build(MsgEnv::new(), |e| crate::convert::py_to_term(e, term).map_err(crate::convert::conv_to_py))?;
    let sent = py.detach(move || msg.send(&target));
    if sent {
        Ok(())
    } else {
        Err(interp_kit::error(py, Class::ProcessError, format!("process {} is not alive", pid.repr()?)))
    }
}

/// The pid registered under `name` (a `str`, `erlang.Atom` or `bytes`), or `None`.
/// Bytes are the atom's UTF-8 text, as 2.3.1 accepted them; bytes that are not UTF-8
/// name no atom, so no process.
#[pyfunction]
fn whereis<'py>(py: Python<'py>, name: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    let text: std::borrow::Cow<'_, str> = if let Ok(s) = name.cast::<pyo3::types::PyString>() {
        s.to_cow()?
    } else if let Ok(b) = name.cast::<pyo3::types::PyBytes>() {
        match std::str::from_utf8(b.as_bytes()) {
            Ok(s) => std::borrow::Cow::Owned(s.to_owned()),
            Err(_) => return Ok(None),
        }
    } else {
        let kind = name.get_type().name()?;
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "whereis() name must be str, bytes or erlang.Atom, not {kind}"
        )));
    };
    let env = MsgEnv::new();
    let found = env.with(|e| {
        let atom = crate::convert::existing_atom(e, &text)?;
        let mut pid = std::mem::MaybeUninit::<rustler::sys::ErlNifPid>::uninit();
        // SAFETY: a null env is allowed for enif_whereis_pid from a non-scheduler thread;
        // `atom` is a live term of `e`, and `pid` is written before it is read below.
        let ok = unsafe {
            rustler::sys::enif_whereis_pid(std::ptr::null_mut(), atom.as_c_arg(), pid.as_mut_ptr())
        };
        if ok == 0 {
            return None;
        }
        // SAFETY: enif_whereis_pid answered true, so it filled `pid`.
        let pid = LocalPid::from_c_arg(unsafe { pid.assume_init() });
        Some(pid.encode(e).to_binary().as_slice().to_vec())
    });
    found.map(|etf| crate::pytypes::new_pid(py, &etf)).transpose()
}


/// Sleep without holding the GIL (the synchronous half of `erlang.sleep`).
#[pyfunction]
fn _sleep(py: Python<'_>, seconds: &Bound<'_, PyAny>) -> PyResult<()> {
    let seconds: f64 = seconds.extract()?;
    let length = std::time::Duration::try_from_secs_f64(seconds)
        .map_err(|_| pyo3::exceptions::PyValueError::new_err("sleep length must be a non-negative number of seconds that fits a Duration"))?;
    py.detach(|| std::thread::sleep(length));
    Ok(())
}

/// Forward a Python `logging` record to the Erlang logger (see `_logging.py`).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn _log(
    py: Python<'_>,
    level: &Bound<'_, PyAny>,
    logger: &Bound<'_, PyAny>,
    module: &Bound<'_, PyAny>,
    function: &Bound<'_, PyAny>,
    line: &Bound<'_, PyAny>,
    message: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let line: u32 = line.extract()?;
    let mut fields: [Vec<u8>; 5] = Default::default();
    for (field, value) in fields.iter_mut().zip([level, logger, module, function, message]) {
        *field = py_args::text(value, "_log() field")?.as_bytes().to_vec();
    }
    let size = fields.iter().map(Vec::len).sum();
    py.detach(move || {
        send_to_output_handler(Payload::Record, size, |e, who| {
            let [level, logger, module, function, message] =
                fields.map(|f| crate::convert::py_bytes_to_binary(e, &f));
            let record = rustler::types::tuple::make_tuple(e, &[level, logger, module, function, line.encode(e), message]);
            (crate::atoms::py_log(), who, record).encode(e)
        })
    });
    Ok(())
}

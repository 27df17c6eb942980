//! The native half of the `erlang` Python module: the `Pid` and `Ref` types, the exception
//! raised into interrupted code, and the output hook Python's stdout/stderr write through.
//! The pure-Python half (python/erlang_shim) is installed on top of it at start-up.

use crate::msg_env::{MsgEnv, OwnedTerm};
use crate::output::send_to_output_handler;
pub use crate::pytypes::{ErlangError, Interrupted, Pid, ProcessError};
use pyo3::prelude::*;
use rustler::{Encoder, LocalPid};

/// Write Python output to the Erlang side: stream 1 is stdout, 2 is stderr.
#[pyfunction]
fn _write(py: Python<'_>, stream: u8, text: &str) {
    let data = text.as_bytes().to_vec();
    py.detach(move || {
        send_to_output_handler(|e, who| {
            let tag = if stream == 2 { crate::atoms::stderr() } else { crate::atoms::stdout() };
            let bin = crate::convert::py_bytes_to_binary(e, &data);
            (crate::atoms::py_output(), who, tag, bin).encode(e)
        });
        crate::output::note_write(stream, &data);
    });
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
fn call(py: Python<'_>, name: &str, args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<Py<PyAny>> {
    ensure_registered(name)?;
    crate::actors::callback::call_erlang(py, name, args)
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
fn async_call(py: Python<'_>, name: &str, args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<Py<PyAny>> {
    ensure_registered(name)?;
    crate::actors::callback::async_call_erlang(py, name, args)
}

/// Whether an Erlang function is registered under `name`.
#[pyfunction]
fn _is_registered(name: &str) -> bool {
    crate::actors::callback::is_registered(name)
}

/// Send `term` to the Erlang process `pid`; raises `erlang.ProcessError` if it is not alive.
#[pyfunction]
fn send(py: Python<'_>, pid: &Bound<'_, Pid>, term: &Bound<'_, PyAny>) -> PyResult<()> {
    let target = MsgEnv::reuse_or_new();
    let decoded = target.with(|e| e.binary_to_term(pid.get().etf()).and_then(|(t, _)| t.decode::<LocalPid>().ok()));
    target.recycle();
    let target = decoded.ok_or_else(|| ProcessError::new_err("not a local pid"))?;
    let msg = OwnedTerm::try_build(MsgEnv::new(), |e| crate::convert::py_to_term(e, term).map_err(crate::convert::conv_to_py))?;
    let sent = py.detach(move || msg.send(&target));
    if sent {
        Ok(())
    } else {
        Err(ProcessError::new_err(format!("process {} is not alive", pid.get().__repr__())))
    }
}

/// The pid registered under `name` (a `str`, `erlang.Atom` or `bytes`), or `None`.
/// Bytes are the atom's UTF-8 text, as 2.3.1 accepted them; bytes that are not UTF-8
/// name no atom, so no process.
#[pyfunction]
fn whereis(py: Python<'_>, name: &Bound<'_, PyAny>) -> PyResult<Option<Py<Pid>>> {
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
    found.map(|etf| Py::new(py, Pid::from_etf(etf))).transpose()
}


/// Sleep without holding the GIL (the synchronous half of `erlang.sleep`).
#[pyfunction]
fn _sleep(py: Python<'_>, seconds: f64) -> PyResult<()> {
    let length = std::time::Duration::try_from_secs_f64(seconds)
        .map_err(|_| pyo3::exceptions::PyValueError::new_err("sleep length must be a non-negative number of seconds that fits a Duration"))?;
    py.detach(|| std::thread::sleep(length));
    Ok(())
}

/// Forward a Python `logging` record to the Erlang logger (see `_logging.py`).
#[pyfunction]
fn _log(py: Python<'_>, level: &str, logger: &str, module: &str, function: &str, line: u32, message: &str) {
    let fields = [level, logger, module, function, message].map(|f| f.as_bytes().to_vec());
    py.detach(move || {
        send_to_output_handler(|e, who| {
            let [level, logger, module, function, message] =
                fields.map(|f| crate::convert::py_bytes_to_binary(e, &f));
            let record = rustler::types::tuple::make_tuple(e, &[level, logger, module, function, line.encode(e), message]);
            (crate::atoms::py_log(), who, record).encode(e)
        })
    });
}

#[pymodule]
#[pyo3(name = "erlang")]
pub mod erlang {
    #[pymodule_export]
    use crate::pytypes::{Pid, Ref, SharedDict};
    #[pymodule_export]
    use super::{_write, _flush, _log, call, async_call, _is_registered, send, whereis, _sleep};
    #[pymodule_export]
    use crate::spans::{SpanHandle, _span_start};
    #[pymodule_export]
    use crate::state_py::{
        state_clear, state_decr, state_delete, state_get, state_incr, state_keys, state_set,
    };

    #[pymodule_init]
    fn init(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
        use pyo3::prelude::*;
        m.add("Interrupted", m.py().get_type::<super::Interrupted>())?;
        m.add("ErlangError", m.py().get_type::<super::ErlangError>())?;
        m.add("ProcessError", m.py().get_type::<super::ProcessError>())?;
        Ok(())
    }
}

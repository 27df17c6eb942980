//! The native half of the `erlang` Python module: the `Pid` and `Ref` types, the exception
//! raised into interrupted code, and the output hook Python's stdout/stderr write through.
//! The pure-Python half (python/erlang_shim) is installed on top of it at start-up.

use crate::msg_env::MsgEnv;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use rustler::{Encoder, LocalPid};
use std::cell::Cell;
use std::sync::Mutex;

pyo3::create_exception!(
    erlang,
    Interrupted,
    pyo3::exceptions::PyBaseException,
    "Raised inside Python code whose Erlang caller gave up (timeout or cancel)."
);

/// An Erlang process identifier. Hashable, comparable, and converts back to the same pid.
#[pyclass(module = "erlang", name = "Pid", frozen, eq, hash)]
#[derive(PartialEq, Eq, Hash)]
pub struct Pid {
    etf: Vec<u8>,
}

/// An Erlang reference. Hashable, comparable, and converts back to the same reference.
#[pyclass(module = "erlang", name = "Ref", frozen, eq, hash)]
#[derive(PartialEq, Eq, Hash)]
pub struct Ref {
    etf: Vec<u8>,
}

impl Pid {
    pub fn from_etf(etf: Vec<u8>) -> Pid {
        Pid { etf }
    }
    pub fn etf(&self) -> &[u8] {
        &self.etf
    }
}

impl Ref {
    pub fn from_etf(etf: Vec<u8>) -> Ref {
        Ref { etf }
    }
    pub fn etf(&self) -> &[u8] {
        &self.etf
    }
}

#[pymethods]
impl Pid {
    fn __repr__(&self) -> String {
        match pid_numbers(&self.etf) {
            Some((id, serial)) => format!("<erlang.Pid <0.{id}.{serial}>>"),
            None => "<erlang.Pid>".to_string(),
        }
    }
}

#[pymethods]
impl Ref {
    fn __repr__(&self) -> String {
        let tail: String = self.etf.iter().rev().take(6).map(|b| format!("{b:02x}")).collect();
        format!("<erlang.Ref {tail}>")
    }
}

/// The process number and serial of a pid in the external term format.
fn pid_numbers(etf: &[u8]) -> Option<(u32, u32)> {
    let tag = *etf.get(1)?;
    if tag != 88 && tag != 103 {
        return None;
    }
    let after_node = match *etf.get(2)? {
        118 => 5 + u16::from_be_bytes(etf.get(3..5)?.try_into().ok()?) as usize,
        119 => 4 + *etf.get(3)? as usize,
        100 => 5 + u16::from_be_bytes(etf.get(3..5)?.try_into().ok()?) as usize,
        _ => return None,
    };
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(etf.get(at..at + 4)?.try_into().ok()?))
    };
    Some((word(after_node)?, word(after_node + 4)?))
}

thread_local! {
    /// The Erlang process whose request runs on this thread, for routing its output.
    static CURRENT_CALLER: Cell<Option<LocalPid>> = const { Cell::new(None) };
}

static OUTPUT_HANDLER: Mutex<Option<LocalPid>> = Mutex::new(None);

pub fn set_current_caller(pid: Option<LocalPid>) {
    CURRENT_CALLER.with(|c| c.set(pid));
}

pub fn set_output_handler(pid: LocalPid) {
    *OUTPUT_HANDLER.lock().unwrap() = Some(pid);
}

/// Send `{Tag, Caller | undefined, Payload...}` to the output handler process.
pub fn send_to_output_handler(build: impl for<'a> FnOnce(rustler::Env<'a>, rustler::Term<'a>) -> rustler::Term<'a>) {
    let Some(handler) = *OUTPUT_HANDLER.lock().unwrap() else { return };
    let caller = CURRENT_CALLER.with(|c| c.get());
    let mut env = MsgEnv::new();
    let msg = env.with(|e| {
        let who = match caller {
            Some(pid) => pid.encode(e),
            None => crate::atoms::undefined().encode(e),
        };
        build(e, who).as_c_arg()
    });
    env.send_and_clear(&handler, msg);
}

/// Write Python output to the Erlang side: stream 1 is stdout, 2 is stderr.
#[pyfunction]
fn _write(py: Python<'_>, stream: u8, text: &str) {
    let data = text.as_bytes().to_vec();
    py.detach(move || {
        send_to_output_handler(|e, who| {
            let tag = if stream == 2 { crate::atoms::stderr() } else { crate::atoms::stdout() };
            let bin = crate::convert::py_bytes_to_binary(e, &data);
            (crate::atoms::py_output(), who, tag, bin).encode(e)
        })
    });
}

/// The class the shim defines for `erlang.Atom` (a `str` subclass).
pub fn atom_type(py: Python<'_>) -> &Py<PyType> {
    static ATOM_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    ATOM_TYPE.get_or_init(py, || {
        py.import("erlang")
            .and_then(|m| m.getattr("Atom"))
            .and_then(|a| Ok(a.cast_into::<PyType>()?.unbind()))
            // Before the shim is installed nothing is an Atom: a type no str is an instance of.
            .unwrap_or_else(|_| py.get_type::<Interrupted>().unbind())
    })
}

#[pymodule]
#[pyo3(name = "erlang")]
pub mod erlang {
    #[pymodule_export]
    use super::{Pid, Ref, _write};

    #[pymodule_init]
    fn init(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
        use pyo3::prelude::*;
        m.add("Interrupted", m.py().get_type::<super::Interrupted>())?;
        Ok(())
    }
}

//! Which Python interpreter a context's thread runs in: the main interpreter (`worker`
//! contexts, sharing one GIL), or a sub-interpreter of its own, created with its own GIL
//! when the context starts and ended when it leaves (`own_gil`, CPython 3.12 and newer,
//! PEP 684). A leaf: the actor tells it what to run; it knows nothing of contexts.
//!
//! Why plain `Python::attach` is sound on an own-GIL context's thread: the thread is a
//! fresh one that has never used the `PyGILState` API, so creating the interpreter binds
//! the new thread state as this thread's `PyGILState` state (`_PyThreadState_Bind`). We
//! check that right after creation and refuse the start otherwise. `PyGILState_Ensure`
//! (which pyo3's `attach` uses, as do C extensions) then finds that thread state current
//! and holding its GIL, and only counts: it never switches to the main interpreter. The
//! thread stays attached from creation to `Py_EndInterpreter`, except inside `detach`,
//! which saves and restores the same thread state.
//!
//! A second thread may act in the sub-interpreter: the context's interrupt watcher
//! (`InterruptWatcher`), which raises `erlang.Interrupted` there when a caller gives up
//! (`PyThreadState_SetAsyncExc` only reaches threads of the interpreter it is called in).
//! It is also a fresh thread, so its own thread state becomes its `PyGILState` state the
//! same way; it is created, used and deleted by that thread, and the context thread joins
//! it before it ends the interpreter (which must have no other thread state left).

use crossbeam_channel::{Receiver, Sender};
use pyo3::ffi;
use pyo3::prelude::*;

/// Where a context runs its Python code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterpMode {
    /// The main interpreter, with its one GIL.
    Main,
    /// An isolated sub-interpreter with its own GIL.
    OwnGil,
}

/// Whether this build's CPython can run sub-interpreters with their own GIL (3.12+).
pub const OWN_GIL_SUPPORTED: bool = cfg!(Py_3_12);

/// Whether this build's CPython runs without a GIL (`Py_GIL_DISABLED`, 3.13t and newer).
pub const FREE_THREADED: bool = cfg!(Py_GIL_DISABLED);

/// Run `body` on this thread attached to an interpreter of kind `mode`. For `OwnGil`, the
/// interpreter is created first, `prepare` readies it (our modules), and it is ended once
/// `body` returns: everything `body` made from that interpreter must be gone by then.
/// `Err` says why the interpreter could not be created or prepared.
pub fn run_attached<R>(
    mode: InterpMode,
    prepare: impl FnOnce(Python<'_>) -> PyResult<()>,
    body: impl FnOnce(Python<'_>) -> R,
) -> Result<R, String> {
    match mode {
        InterpMode::Main => Ok(Python::attach(body)),
        InterpMode::OwnGil => own_gil::run(prepare, body),
    }
}

/// An interpreter's id: 0 is the main interpreter; ids are never reused in a process, so
/// an id kept past its interpreter's end matches no later one.
pub type InterpreterId = i64;

/// The id of the interpreter this thread is attached to.
pub fn current_id(_py: Python<'_>) -> InterpreterId {
    // SAFETY: the `Python` token proves this thread is attached, so it has a current
    // interpreter.
    unsafe { ffi::PyInterpreterState_GetID(ffi::PyInterpreterState_Get()) }
}

#[cfg(Py_3_12)]
mod own_gil {
    use super::*;

    /// A sub-interpreter created by, and attached to, the current thread.
    struct SubInterpreter {
        tstate: *mut ffi::PyThreadState,
    }

    pub fn run<R>(prepare: impl FnOnce(Python<'_>) -> PyResult<()>, body: impl FnOnce(Python<'_>) -> R) -> Result<R, String> {
        let interp = SubInterpreter::create()?;
        // `attach` finds this thread state current (see the module comment) and only counts.
        let result = Python::attach(|py| {
            prepare(py).map_err(|e| format!("preparing the sub-interpreter failed: {e}"))?;
            Ok(body(py))
        });
        interp.end();
        result
    }

    impl SubInterpreter {
        fn create() -> Result<SubInterpreter, String> {
            // Isolated: its own GIL and allocator, no fork/exec, no daemon threads, and
            // extension modules must declare sub-interpreter support (PEP 489 multi-phase).
            let config = ffi::_PyInterpreterConfig_INIT;
            let mut tstate: *mut ffi::PyThreadState = std::ptr::null_mut();
            // SAFETY: Python is initialized (contexts start after `runtime::start`); this
            // thread holds no thread state, and the call makes the new one current.
            let status = unsafe { ffi::Py_NewInterpreterFromConfig(&mut tstate, &config) };
            let err_msg = status.err_msg;
            // SAFETY: `status` is the value the call returned.
            if unsafe { ffi::PyStatus_Exception(status) } != 0 || tstate.is_null() {
                let why = if err_msg.is_null() {
                    "unknown error".to_string()
                } else {
                    // SAFETY: a failed status carries a static C string (or NULL, checked).
                    unsafe { std::ffi::CStr::from_ptr(err_msg) }.to_string_lossy().into_owned()
                };
                return Err(format!("cannot create a sub-interpreter: {why}"));
            }
            let interp = SubInterpreter { tstate };
            // SAFETY: reads this thread's PyGILState binding; no GIL needed.
            if unsafe { ffi::PyGILState_GetThisThreadState() } != tstate {
                interp.end();
                return Err("cannot create a sub-interpreter: its thread state is not this thread's PyGILState state".into());
            }
            Ok(interp)
        }

        fn end(self) {
            // SAFETY: `tstate` was made current by `create` and is still current and
            // attached (every `attach`/`detach` since restored it); the caller dropped all
            // objects of this interpreter, and no other thread state of it is left (the
            // interrupt watcher was joined). Afterwards this thread has no thread state.
            unsafe { ffi::Py_EndInterpreter(self.tstate) };
        }
    }
}

#[cfg(not(Py_3_12))]
mod own_gil {
    use super::*;

    pub fn run<R>(_prepare: impl FnOnce(Python<'_>) -> PyResult<()>, _body: impl FnOnce(Python<'_>) -> R) -> Result<R, String> {
        Err("sub-interpreters with their own GIL need CPython 3.12 or newer".into())
    }
}

/// A thread that raises `erlang.Interrupted` in one sub-interpreter's context thread when
/// asked (see the module comment). Dropping it stops and joins the thread; the caller must
/// be detached meanwhile, since the thread needs the interpreter's GIL to leave.
pub struct InterruptWatcher {
    requests: Option<Sender<u64>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InterruptWatcher {
    /// Start watching the interpreter this thread is attached to; `interrupt` runs on the
    /// watcher's thread, attached to that interpreter, once per request id sent.
    pub fn start(
        py: Python<'_>,
        name: String,
        interrupt: impl Fn(Python<'_>, u64) + Send + 'static,
    ) -> std::io::Result<(InterruptWatcher, Sender<u64>)> {
        // SAFETY: attached (the token), so there is a current interpreter; it outlives the
        // watcher, which is joined before the interpreter ends.
        let interp = SendPtr(unsafe { ffi::PyInterpreterState_Get() });
        let _ = py;
        let (tx, rx) = crossbeam_channel::unbounded::<u64>();
        let thread = std::thread::Builder::new().name(name).spawn(move || watch(interp, rx, interrupt))?;
        Ok((InterruptWatcher { requests: Some(tx.clone()), thread: Some(thread) }, tx))
    }
}

impl Drop for InterruptWatcher {
    fn drop(&mut self) {
        // The context's copy of the sender is the last besides the mailbox's, which the
        // watcher ignores: a dedicated stop is `u64::MAX` (no request has that id).
        if let Some(tx) = self.requests.take() {
            let _ = tx.send(u64::MAX);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct SendPtr(*mut ffi::PyInterpreterState);
// SAFETY: the pointer is only dereferenced by CPython, on the watcher thread, while the
// interpreter is alive (the watcher is joined before the interpreter ends).
unsafe impl Send for SendPtr {}

fn watch(interp: SendPtr, requests: Receiver<u64>, interrupt: impl Fn(Python<'_>, u64)) {
    // SAFETY: the interpreter is alive (see `SendPtr`); a new thread state needs no GIL,
    // and on this fresh thread it becomes its PyGILState state.
    let tstate = unsafe { ffi::PyThreadState_New(interp.0) };
    if tstate.is_null() {
        return;
    }
    // SAFETY: reads this thread's PyGILState binding; no GIL needed.
    if unsafe { ffi::PyGILState_GetThisThreadState() } != tstate {
        // `attach` would reach the main interpreter: never interrupt rather than that.
        // SAFETY: as at the end below.
        unsafe {
            ffi::PyEval_RestoreThread(tstate);
            ffi::PyThreadState_Clear(tstate);
            ffi::PyThreadState_DeleteCurrent();
        }
        return;
    }
    for req_id in requests.iter() {
        if req_id == u64::MAX {
            break;
        }
        // SAFETY: `tstate` is this thread's, detached; restoring waits for the
        // interpreter's GIL, and saving gives it back.
        unsafe { ffi::PyEval_RestoreThread(tstate) };
        Python::attach(|py| interrupt(py, req_id));
        // SAFETY: attached with `tstate` (restored above); `attach` only counted.
        unsafe { ffi::PyEval_SaveThread() };
    }
    // SAFETY: attach once more to clear the thread state with the GIL held, then delete
    // it, which also releases the GIL; the thread never uses Python again.
    unsafe {
        ffi::PyEval_RestoreThread(tstate);
        ffi::PyThreadState_Clear(tstate);
        ffi::PyThreadState_DeleteCurrent();
    }
}

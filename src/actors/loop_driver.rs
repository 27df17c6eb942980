//! The only code that drives a context's asyncio loop through CPython's private API.
//!
//! A context runs its loop one turn at a time between mailbox messages, which asyncio has
//! no public API for. What this module relies on, checked when a context starts (a
//! missing piece fails the start with a reason naming it and the Python version, instead
//! of breaking later in the middle of a request):
//!
//! - `BaseEventLoop._run_once`: one turn of the loop (ready callbacks, then the selector);
//! - `BaseEventLoop._ready`, `BaseEventLoop._scheduled` and the selector's
//!   `_fd_to_key`: whether the loop has anything to do, read on every idle turn;
//! - `BaseEventLoop._thread_id`: set so asyncio knows the loop's thread (which makes
//!   `call_soon_threadsafe` and the debug checks work), cleared before closing;
//! - `asyncio.events._set_running_loop`: the loop counts as running only during a turn;
//! - `asyncio.events._get_running_loop`: which loop `erlang.async_call` is awaited in;
//! - `asyncio.tasks._current_tasks`: the task a turn runs, to find its request;
//! - `BaseSelectorEventLoop._transports`: the connections (socket transports) open on
//!   the loop, closed by `wind_down` when the context stops.
//!
//! The Python half (`erlang_shim._aio`) holds the task factory that marks each task with
//! its request (`_erlang_request`) and the helpers that start and wind down tasks.
//! Every object here belongs to one context: nothing is cached process-wide, because a
//! context will get an interpreter of its own.

use crate::mailbox::ContextShared;
use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyDict, PyModule, PyString, PyTuple};
use std::sync::atomic::Ordering;

/// Why a context's loop could not be set up.
pub enum StartError {
    /// A private asyncio attribute the driver needs is missing (another Python version).
    MissingApi(String),
    Python(PyErr),
}

impl From<PyErr> for StartError {
    fn from(e: PyErr) -> StartError {
        StartError::Python(e)
    }
}

impl From<std::io::Error> for StartError {
    fn from(e: std::io::Error) -> StartError {
        StartError::Python(e.into())
    }
}

/// A context's asyncio loop and the private parts of asyncio it is driven through,
/// looked up once when the context starts. Never changed afterwards, so no borrow guards
/// it, and Python code run from it may re-enter the actor freely.
pub struct LoopDriver {
    event_loop: Py<PyAny>,
    run_once: Py<PyAny>,
    /// The ready queue and the selector's fd table are never replaced while the loop
    /// lives; the timer heap is, so it is read by name.
    ready: Py<PyAny>,
    watched_fds: Py<PyAny>,
    scheduled_name: Py<PyString>,
    set_running_loop: Py<PyAny>,
    get_running_loop: Py<PyAny>,
    current_tasks: Py<PyDict>,
    /// `_erlang_request`, the attribute the task factory marks tasks with.
    request_mark: Py<PyString>,
    helpers: Py<PyModule>,
}

/// `obj.attr`, or the start-up failure that names `label` and this Python's version.
fn require<'py>(obj: &Bound<'py, PyAny>, attr: &str, label: &str) -> Result<Bound<'py, PyAny>, StartError> {
    obj.getattr(attr).map_err(|_| missing(obj.py(), label))
}

fn missing(py: Python<'_>, label: &str) -> StartError {
    let v = py.version_info();
    StartError::MissingApi(format!("asyncio private API missing: {label} (Python {}.{}.{})", v.major, v.minor, v.patch))
}

impl LoopDriver {
    /// A new loop for the context thread `shared` describes, set as the thread's event
    /// loop, with the mailbox's wake-up eventfd watched and the task factory installed.
    pub fn open(py: Python<'_>, shared: &ContextShared) -> Result<LoopDriver, StartError> {
        let events = py.import("asyncio.events")?;
        let set_running_loop = require(events.as_any(), "_set_running_loop", "asyncio.events._set_running_loop")?;
        let get_running_loop = require(events.as_any(), "_get_running_loop", "asyncio.events._get_running_loop")?;
        let current_tasks = require(py.import("asyncio.tasks")?.as_any(), "_current_tasks", "asyncio.tasks._current_tasks")?
            .cast_into::<PyDict>()
            .map_err(|_| missing(py, "asyncio.tasks._current_tasks (a dict)"))?;
        let asyncio = py.import("asyncio")?;
        let event_loop = asyncio.call_method0("new_event_loop")?;
        let run_once = require(&event_loop, "_run_once", "BaseEventLoop._run_once")?;
        let ready = require(&event_loop, "_ready", "BaseEventLoop._ready")?;
        require(&event_loop, "_scheduled", "BaseEventLoop._scheduled")?;
        require(&event_loop, "_thread_id", "BaseEventLoop._thread_id")?;
        let selector = require(&event_loop, "_selector", "BaseSelectorEventLoop._selector")?;
        // Read by `wind_down` to close the connections still open when the context stops.
        require(&event_loop, "_transports", "BaseSelectorEventLoop._transports")?;
        let watched_fds = require(&selector, "_fd_to_key", "selectors._BaseSelectorImpl._fd_to_key")?;
        let helpers = py.import("erlang_shim._aio")?;

        asyncio.call_method1("set_event_loop", (&event_loop,))?;
        event_loop.setattr("_thread_id", shared.thread_ident.load(Ordering::Acquire))?;
        // The mailbox wakes the loop's selector through this fd when the actor waits there.
        // SAFETY: plain system call; the result is checked below.
        let wake_fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if wake_fd < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        let drain = PyCFunction::new_closure(py, None, None, move |_a: &Bound<'_, PyTuple>, _k: Option<&Bound<'_, PyDict>>| {
            let mut buf = [0u8; 8];
            // SAFETY: the reader is removed (the loop closed) before the fd is closed
            // (`close_wake_fd`), and the buffer is the 8 bytes an eventfd read wants.
            unsafe { libc::read(wake_fd, buf.as_mut_ptr() as *mut libc::c_void, 8) };
        })?;
        // Stored before it can fail, so that the fd is closed with the mailbox either way.
        shared.wake_fd.store(wake_fd, Ordering::Release);
        event_loop.call_method1("add_reader", (wake_fd, drain))?;
        // The servers the loop creates are remembered, so that closing the loop closes them.
        helpers.call_method1("track_servers", (&event_loop,))?;
        // Tasks carry the request they run for, so a timeout can interrupt a busy task.
        event_loop.call_method1("set_task_factory", (helpers.getattr("task_factory")?,))?;
        *shared.event_loop.lock().unwrap() = Some(event_loop.clone().unbind());
        Ok(LoopDriver {
            run_once: run_once.unbind(),
            ready: ready.unbind(),
            watched_fds: watched_fds.unbind(),
            scheduled_name: PyString::intern(py, "_scheduled").unbind(),
            set_running_loop: set_running_loop.unbind(),
            get_running_loop: get_running_loop.unbind(),
            current_tasks: current_tasks.unbind(),
            request_mark: PyString::intern(py, "_erlang_request").unbind(),
            helpers: helpers.unbind(),
            event_loop: event_loop.unbind(),
        })
    }

    pub fn event_loop<'py>(&self, py: Python<'py>) -> &Bound<'py, PyAny> {
        self.event_loop.bind(py)
    }

    /// The coroutine helpers (`erlang_shim._aio`).
    pub fn helpers<'py>(&self, py: Python<'py>) -> &Bound<'py, PyModule> {
        self.helpers.bind(py)
    }

    /// Mark the loop running (or not) for asyncio's `get_running_loop`.
    pub fn set_running(&self, py: Python<'_>, running: bool) {
        let arg = if running { self.event_loop.clone_ref(py) } else { py.None() };
        let _ = self.set_running_loop.bind(py).call1((arg,));
    }

    /// One turn: ready callbacks, then the selector (blocking until a timer, I/O or the
    /// mailbox's wake-up).
    pub fn run_once(&self, py: Python<'_>) -> PyResult<()> {
        self.run_once.bind(py).call0().map(drop)
    }

    /// Whether callbacks, timers or watched fds are pending on the loop.
    pub fn has_pending(&self, py: Python<'_>) -> bool {
        let size = |obj: &Bound<'_, PyAny>| obj.len().unwrap_or(0);
        let scheduled = self.event_loop.bind(py).getattr(self.scheduled_name.bind(py));
        // Two watched fds are ours (the loop's self-pipe and the mailbox wake-up).
        size(self.ready.bind(py)) > 0 || scheduled.is_ok_and(|s| size(&s) > 0) || size(self.watched_fds.bind(py)) > 2
    }

    /// The request of the task running now on this loop (see the task factory).
    pub fn current_task_request(&self, py: Python<'_>) -> Option<u64> {
        let task = self.current_tasks.bind(py).get_item(self.event_loop.bind(py)).ok()??;
        task.getattr(self.request_mark.bind(py)).ok()?.extract().ok()
    }

    /// The asyncio loop running in this thread, if any (it may be another than ours:
    /// user code can run a loop of its own inside a request).
    pub fn running_loop<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let running = self.get_running_loop.bind(py).call0()?;
        Ok((!running.is_none()).then_some(running))
    }

    /// `awaitable` as a task on the loop, marked as request `id`'s.
    pub fn start_task<'py>(&self, py: Python<'py>, awaitable: &Bound<'py, PyAny>, id: u64) -> PyResult<Bound<'py, PyAny>> {
        self.helpers.bind(py).call_method1("start_task", (self.event_loop.bind(py), awaitable, id))
    }

    pub fn call_soon(&self, py: Python<'_>, callback: Bound<'_, PyAny>) -> PyResult<()> {
        self.event_loop.bind(py).call_method1("call_soon", (callback,)).map(drop)
    }

    pub fn create_future<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.event_loop.bind(py).call_method0("create_future")
    }

    /// Close the servers the loop created, cancel what is left on it, give it a moment
    /// to clean up, close its connections (`wind_down`), and close the loop, so its
    /// sockets, selector and self-pipe go now rather than whenever the cycle collector
    /// finds them.
    pub fn close(&self, py: Python<'_>, shared: &ContextShared) {
        let event_loop = self.event_loop.bind(py);
        // While `_thread_id` is set, asyncio counts the loop as running and refuses to close it.
        let closed = event_loop
            .setattr("_thread_id", py.None())
            .and_then(|_| self.helpers.bind(py).call_method1("wind_down", (event_loop,)))
            .and_then(|_| event_loop.call_method0("close"));
        if let Err(e) = closed {
            crate::py_errors::log_exception(py, &e);
        }
        drop(shared.event_loop.lock().map(|mut l| l.take()));
    }
}

/// The asyncio loop running in this thread, for threads that are not a context's: looked
/// up each time (rare: `erlang.async_call` in a loop of the user's), so nothing is cached
/// outside the interpreter that asks.
pub fn running_loop_of_thread(py: Python<'_>) -> PyResult<Option<Bound<'_, PyAny>>> {
    let running = py.import("asyncio.events")?.getattr("_get_running_loop")?.call0()?;
    Ok((!running.is_none()).then_some(running))
}

/// The request of the task that runs now on `event_loop`, for the interrupter (a thread
/// of its own, not hot: it runs when a call times out). `current_task` is Python code on
/// 3.11, and running it could let the GIL go and the actor switch tasks under us; the
/// table it reads is a plain dict, read here in C.
pub fn task_request_of(py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> Option<u64> {
    let tasks = py.import("asyncio.tasks").ok()?;
    let task = match tasks.getattr("_current_tasks").ok()?.cast_into::<PyDict>() {
        Ok(table) => table.get_item(event_loop).ok()??,
        Err(_) => tasks.getattr("current_task").ok()?.call1((event_loop,)).ok()?,
    };
    if task.is_none() {
        return None;
    }
    task.getattr("_erlang_request").ok()?.extract().ok()
}

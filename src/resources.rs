//! Erlang-visible handles. Their destructors never take the GIL: releasing Python state
//! is a message to the owning actor.

use crate::actors::{Mailbox, Msg, ReqState};
use pyo3::{Bound, Py, PyAny, Python};
use rustler::Resource;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A running context: the mailbox NIFs submit to.
pub struct ContextRes {
    pub mailbox: Mailbox,
}

/// A process-bound namespace on one context (what `get_local_env/1` returns).
pub struct EnvRes {
    pub env_id: u64,
    pub mailbox: Mailbox,
}

/// One submitted request, kept by the caller so that a timeout can cancel it.
pub struct ReqRes {
    pub state: Arc<ReqState>,
    /// To wake the context when a request that waits for Erlang is cancelled.
    pub mailbox: Mailbox,
}

/// A Python object held by Erlang (`#{return => ref}`).
pub struct PyRefRes {
    object: Option<Py<PyAny>>,
    pub mailbox: Mailbox,
}

/// Watches the Erlang process running a function that Python code waits for.
pub struct CallerWatch {
    pub mailbox: Mailbox,
    pub callback_id: u64,
}

#[rustler::resource_impl]
impl Resource for CallerWatch {
    fn down<'a>(&'a self, _env: rustler::Env<'a>, _pid: rustler::LocalPid, _mon: rustler::Monitor) {
        self.mailbox.control(Msg::CallbackAbort(self.callback_id));
    }
}

/// Watches the process that started a task or stream on a context's loop (`async_call`,
/// `async_gather`, `stream`, `stream_eval`, `stream_start`'s controller): when it exits,
/// the request is cancelled as a timeout would, so its work stops.
pub struct WorkWatch {
    pub mailbox: Mailbox,
    pub state: Arc<ReqState>,
}

#[rustler::resource_impl]
impl Resource for WorkWatch {
    fn down<'a>(&'a self, _env: rustler::Env<'a>, _pid: rustler::LocalPid, _mon: rustler::Monitor) {
        if self.state.try_cancel() {
            crate::runtime::request_interrupt(self.state.ctx.clone(), self.state.id);
            self.mailbox.control(Msg::Cancelled(self.state.id));
        }
    }
}

#[rustler::resource_impl]
impl Resource for ContextRes {}

#[rustler::resource_impl]
impl Resource for EnvRes {}

#[rustler::resource_impl]
impl Resource for ReqRes {}

#[rustler::resource_impl]
impl Resource for PyRefRes {}

impl Drop for EnvRes {
    fn drop(&mut self) {
        self.mailbox.control(Msg::DropEnv(self.env_id));
    }
}

impl PyRefRes {
    pub fn new(object: Py<PyAny>, mailbox: Mailbox) -> PyRefRes {
        PyRefRes { object: Some(object), mailbox }
    }

    pub fn object<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        self.object.as_ref().map(|o| o.bind(py).clone())
    }
}

impl Drop for PyRefRes {
    fn drop(&mut self) {
        if let Some(object) = self.object.take() {
            self.mailbox.control(Msg::DropObject(object));
        }
    }
}


/// A process-scoped dictionary (`py:shared_dict_new/0`), destroyed explicitly or when its
/// owner exits; usable from Erlang and, as `erlang.SharedDict`, from Python.
#[derive(Default)]
pub struct SharedDictRes {
    pub table: crate::state::Table,
    destroyed: AtomicBool,
}

impl SharedDictRes {
    pub fn destroy(&self) {
        self.destroyed.store(true, Ordering::Release);
        self.table.clear();
    }

    /// The table, unless the dictionary was destroyed.
    pub fn live(&self) -> Option<&crate::state::Table> {
        (!self.destroyed.load(Ordering::Acquire)).then_some(&self.table)
    }
}

#[rustler::resource_impl]
impl Resource for SharedDictRes {
    fn down<'a>(&'a self, _env: rustler::Env<'a>, _pid: rustler::LocalPid, _mon: rustler::Monitor) {
        self.destroy();
    }
}

/// One Erlang call made from a Python thread that is not a context's, or from an asyncio
/// loop other than a context's own: the runner process answers through it
/// (`py_nif:callback_reply/3`) rather than through a context's mailbox. It watches the
/// dispatcher until a runner is spawned, then the runner, so that the caller always gets
/// an outcome: the answer, or `Gone` when the process that should answer exits first.
pub struct ThreadCallRes {
    sink: std::sync::Mutex<Option<crate::actors::thread_call::Sink>>,
    /// Monitor of the dispatcher, replaced by one of the runner once it is spawned.
    pub dispatcher_watch: std::sync::Mutex<Option<rustler::Monitor>>,
}

impl ThreadCallRes {
    pub fn new(sink: crate::actors::thread_call::Sink) -> ThreadCallRes {
        ThreadCallRes { sink: std::sync::Mutex::new(Some(sink)), dispatcher_watch: std::sync::Mutex::new(None) }
    }

    /// Hand over the outcome; the first one wins, later ones are dropped.
    pub fn deliver(&self, outcome: crate::actors::thread_call::Outcome) {
        let sink = self.sink.lock().unwrap().take();
        if let Some(sink) = sink {
            sink.deliver(outcome);
        }
    }

    /// The call was never sent: nobody must be told anything.
    pub fn disarm(&self) {
        drop(self.sink.lock().unwrap().take());
    }
}

#[rustler::resource_impl]
impl Resource for ThreadCallRes {
    fn down<'a>(&'a self, _env: rustler::Env<'a>, _pid: rustler::LocalPid, _mon: rustler::Monitor) {
        self.deliver(crate::actors::thread_call::Outcome::Gone);
    }
}

impl Drop for ThreadCallRes {
    /// A call whose handle is released unanswered (a runner that never replied and whose
    /// monitor could not be set) still ends its caller's wait.
    fn drop(&mut self) {
        self.deliver(crate::actors::thread_call::Outcome::Gone);
    }
}

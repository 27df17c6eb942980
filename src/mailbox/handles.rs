//! Erlang-visible handles of contexts, namespaces, requests and Python objects. Their
//! destructors never take the GIL: releasing Python state is a message to the owning actor.

use super::orphans;
use crate::interp::InterpreterId;
use super::{Mailbox, Msg, ReqState};
use pyo3::{Bound, Py, PyAny, Python};
use rustler::Resource;
use std::sync::{Arc, Mutex};

/// A running context: the mailbox NIFs submit to.
pub struct ContextRes {
    pub mailbox: Mailbox,
    /// The handle `context_start` made (its owner's): when it is gone, the context stops.
    /// Other handles of the same context (in callback messages) are views that do not.
    pub primary: bool,
}

impl ContextRes {
    /// Another handle on a running context, which does not stop it when collected.
    pub fn view(mailbox: Mailbox) -> ContextRes {
        ContextRes { mailbox, primary: false }
    }
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
    /// `None` once released (`py:release/1`): the handle stays a py ref, unusable.
    object: Mutex<Option<Py<PyAny>>>,
    /// The interpreter the object belongs to: it is only ever read or released there.
    interpreter: InterpreterId,
    pub mailbox: Mailbox,
}

/// Watches the Erlang process running a function that Python code waits for.
pub struct CallerWatch {
    pub mailbox: Mailbox,
    pub callback_id: u64,
    /// Whose death it watches: the request's caller, or the process running the function.
    pub gone: super::request::Gone,
}

#[rustler::resource_impl]
impl Resource for CallerWatch {
    fn down<'a>(&'a self, _env: rustler::Env<'a>, _pid: rustler::LocalPid, _mon: rustler::Monitor) {
        self.mailbox.control(Msg::CallbackAbort(self.callback_id, self.gone));
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
        self.state.mark_caller_gone();
        if self.state.try_cancel() {
            super::interrupts::request(self.state.ctx.clone(), self.state.id);
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

/// The last handle of a context gone (a `subinterp_*` handle collected, say): nobody can
/// submit to it any more, so it stops, and an own-GIL context ends its interpreter.
impl Drop for ContextRes {
    fn drop(&mut self) {
        if self.primary {
            self.mailbox.control(Msg::Stop);
        }
    }
}

impl Drop for EnvRes {
    fn drop(&mut self) {
        self.mailbox.control(Msg::DropEnv(self.env_id));
    }
}

impl PyRefRes {
    pub fn new(object: Bound<'_, PyAny>, mailbox: Mailbox) -> PyRefRes {
        let interpreter = crate::interp::current_id(object.py());
        PyRefRes { object: Mutex::new(Some(object.unbind())), interpreter, mailbox }
    }

    /// Whether the object lives in the interpreter attached here (objects never cross
    /// interpreters: sub-interpreter contexts share none).
    pub fn of_this_interpreter(&self, py: Python<'_>) -> bool {
        crate::interp::current_id(py) == self.interpreter
    }

    /// The object, unless the ref was released or belongs to another interpreter than
    /// the one attached here (its objects must never be used under this one's GIL).
    pub fn object<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        if !self.of_this_interpreter(py) {
            return None;
        }
        self.slot().as_ref().map(|o| o.bind(py).clone())
    }

    /// Let go of the object now rather than when the last copy of the handle is garbage
    /// collected; its context drops it under the GIL. Answers whether it was still held.
    pub fn release(&self) -> bool {
        let object = self.slot().take();
        match object {
            Some(object) => {
                // A context that is gone cannot release it: it waits for the next one.
                if let Some(Msg::DropObject(object, interpreter)) = self.mailbox.control_or_back(Msg::DropObject(object, self.interpreter)) {
                    orphans::adopt(interpreter, object);
                }
                true
            }
            None => false,
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Py<PyAny>>> {
        // Nothing panics while the lock is held; a poisoned lock still holds a valid slot.
        self.object.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for PyRefRes {
    fn drop(&mut self) {
        self.release();
    }
}

//! Raising `erlang.Interrupted` in a context thread whose request's caller gave up: run by
//! the shared interrupter (`crate::runtime`, main interpreter) or by an own-GIL context's
//! watcher (`crate::interp`), always attached to the context's own interpreter.

use crate::mailbox::{ContextShared, IN_LOOP};
use crate::pytypes::Interrupted;
use pyo3::ffi;
use pyo3::prelude::*;
use std::sync::atomic::Ordering;

/// Raise `Interrupted` in the context thread if it still runs request `req_id`: its own
/// Python code, or (while the event loop runs) a task of that request. Holding the GIL
/// here means the actor cannot switch requests or tasks while we look; everything looked
/// at is C code, which never lets the GIL go meanwhile.
pub fn interrupt(py: Python<'_>, shared: &ContextShared, req_id: u64) {
    let running = shared.running_req.load(Ordering::Acquire);
    let hit = running == req_id || (running == IN_LOOP && current_task_request(py, shared) == Some(req_id));
    if !hit {
        return;
    }
    shared.arm_interrupt();
    let ident = shared.thread_ident.load(Ordering::Acquire);
    let exc = py.get_type::<Interrupted>();
    // SAFETY: the GIL is held; `ident` names the context's thread (a stale ident only
    // makes the call find no thread), and the type object is alive for the call.
    unsafe { ffi::PyThreadState_SetAsyncExc(ident as _, exc.as_ptr()) };
}

/// The request owning the task that runs on the context's loop now (see `_aio.py`'s task
/// factory, which marks every task with the request it was started for).
fn current_task_request(py: Python<'_>, shared: &ContextShared) -> Option<u64> {
    let event_loop = shared.event_loop.lock().ok()?.as_ref()?.clone_ref(py);
    crate::actors::loop_driver::task_request_of(py, event_loop.bind(py))
}

//! Python objects whose context left before it could release them: a py ref garbage
//! collected after its context stopped or crashed, or whose release message was still
//! queued when the context's thread left. Nobody attached to their interpreter is at
//! hand (the thread that notices is a BEAM scheduler or a context thread that has
//! detached for good), and pyo3's own deferred reference pool is compiled out (see
//! docs/runtime.md, "One erlang module per interpreter"): an object must be released
//! under the GIL of the interpreter it belongs to, which a process-wide pool drained by
//! whichever thread attaches next cannot promise. So each orphan is kept with its
//! interpreter's id, and the next context that starts in that interpreter releases it.
//!
//! Adopting never touches Python (it moves a pointer), so any thread may do it; only
//! `release_mine` drops objects, on a context thread, attached to their interpreter.

use pyo3::{Py, PyAny, Python};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::interp::InterpreterId;

static ORPHANS: Mutex<Vec<(InterpreterId, Py<PyAny>)>> = Mutex::new(Vec::new());
/// Whether `ORPHANS` may hold anything: a context start reads only this when it is empty.
static ANY: AtomicBool = AtomicBool::new(false);

/// Keep `object`, of interpreter `interpreter`, until a context of it can release it.
pub fn adopt(interpreter: InterpreterId, object: Py<PyAny>) {
    let mut orphans = ORPHANS.lock().unwrap_or_else(|e| e.into_inner());
    orphans.push((interpreter, object));
    ANY.store(true, Ordering::Release);
}

/// Release the orphans of the interpreter this thread is attached to.
pub fn release_mine(py: Python<'_>) {
    if !ANY.load(Ordering::Acquire) {
        return;
    }
    let me = crate::interp::current_id(py);
    let mine: Vec<Py<PyAny>> = {
        let mut orphans = ORPHANS.lock().unwrap_or_else(|e| e.into_inner());
        let (mine, others): (Vec<_>, Vec<_>) = orphans.drain(..).partition(|(of, _)| *of == me);
        *orphans = others;
        ANY.store(!orphans.is_empty(), Ordering::Release);
        mine.into_iter().map(|(_, object)| object).collect()
    };
    // Dropped attached, outside the lock: a `__del__` may run and adopt more.
    drop(mine);
}

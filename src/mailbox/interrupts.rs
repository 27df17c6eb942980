//! The queue of interruptions: a caller that gives up on a running request (a timeout, a
//! cancel, its own death) asks the interrupter to stop that request's Python code. The
//! interrupter itself runs on the start-up thread (`crate::runtime`), which installs the
//! receiving end once Python is up; before that, there is nothing to interrupt. A context
//! in a sub-interpreter of its own has its own interrupter (`crate::interp`).

use super::ContextShared;
use crossbeam_channel::Sender;
use std::sync::{Arc, OnceLock};

static QUEUE: OnceLock<Sender<(Arc<ContextShared>, u64)>> = OnceLock::new();

/// Where interruptions go from now on (once per VM; later calls are ignored).
pub fn install(queue: Sender<(Arc<ContextShared>, u64)>) {
    let _ = QUEUE.set(queue);
}

/// Ask the interrupter to stop request `req_id` on its context (no-op if it is not running).
pub fn request(shared: Arc<ContextShared>, req_id: u64) {
    if let Some(watcher) = shared.own_interrupter.get() {
        let _ = watcher.send(req_id);
    } else if let Some(queue) = QUEUE.get() {
        let _ = queue.send((shared, req_id));
    }
}

//! Where Python's output and tracebacks go: the output handler process, and the Erlang
//! process whose request runs on this thread (its group leader receives the output).

use crate::msg_env::{MsgEnv, OwnedTerm};
use rustler::{Encoder, LocalPid};
use std::cell::Cell;
use std::sync::Mutex;

thread_local! {
    /// The Erlang process whose request runs on this thread, for routing its output.
    static CURRENT_CALLER: Cell<Option<LocalPid>> = const { Cell::new(None) };
}

static OUTPUT_HANDLER: Mutex<Option<LocalPid>> = Mutex::new(None);

/// Set the process whose request runs on this thread; answers the previous one.
pub fn set_current_caller(pid: Option<LocalPid>) -> Option<LocalPid> {
    CURRENT_CALLER.with(|c| c.replace(pid))
}

pub fn set_output_handler(pid: LocalPid) {
    *OUTPUT_HANDLER.lock().unwrap() = Some(pid);
}

/// Send `{Tag, Caller | undefined, Payload...}` to the output handler process.
pub fn send_to_output_handler(build: impl for<'a> FnOnce(rustler::Env<'a>, rustler::Term<'a>) -> rustler::Term<'a>) {
    let Some(handler) = *OUTPUT_HANDLER.lock().unwrap() else { return };
    let caller = CURRENT_CALLER.with(|c| c.get());
    let msg = OwnedTerm::build(MsgEnv::new(), |e| {
        let who = match caller {
            Some(pid) => pid.encode(e),
            None => crate::atoms::undefined().encode(e),
        };
        build(e, who)
    });
    msg.send(&handler);
}


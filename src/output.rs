//! Where Python's output and tracebacks go: the output handler process, and the Erlang
//! process whose request runs on this thread (its group leader receives the output).
//!
//! The handler (`py_output`) forwards whole lines and holds a line's start until its end
//! arrives. This side remembers which callers left a line open on this thread, so that
//! the end of their request (or a `flush()`) tells the handler to send it without waiting
//! for its timer; writes that end a line cost nothing more.

use crate::msg_env::{MsgEnv, OwnedTerm};
use rustler::{Encoder, LocalPid};
use std::cell::{Cell, RefCell};
use std::sync::Mutex;

thread_local! {
    /// The Erlang process whose request runs on this thread, for routing its output.
    static CURRENT_CALLER: Cell<Option<LocalPid>> = const { Cell::new(None) };
    /// Callers (and streams) whose last write on this thread did not end its line. A few
    /// entries at most: the requests that run on this thread at once.
    static OPEN_LINES: RefCell<Vec<(Option<LocalPid>, u8)>> = const { RefCell::new(Vec::new()) };
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
    send_for(CURRENT_CALLER.with(|c| c.get()), build);
}

fn send_for(caller: Option<LocalPid>, build: impl for<'a> FnOnce(rustler::Env<'a>, rustler::Term<'a>) -> rustler::Term<'a>) {
    let Some(handler) = *OUTPUT_HANDLER.lock().unwrap() else { return };
    let msg = OwnedTerm::build(MsgEnv::new(), |e| {
        let who = match caller {
            Some(pid) => pid.encode(e),
            None => crate::atoms::undefined().encode(e),
        };
        build(e, who)
    });
    msg.send(&handler);
}

/// Remember whether the current caller's last write on `stream` (1 stdout, 2 stderr),
/// just sent, left its line open, i.e. did not end with a newline.
pub fn note_write(stream: u8, text: &[u8]) {
    if text.is_empty() {
        return;
    }
    let caller = CURRENT_CALLER.with(|c| c.get());
    let open = text.last() != Some(&b'\n');
    OPEN_LINES.with(|lines| {
        let mut lines = lines.borrow_mut();
        let at = lines.iter().position(|&(c, s)| c == caller && s == stream);
        match (at, open) {
            (None, true) => lines.push((caller, stream)),
            (Some(i), false) => drop(lines.swap_remove(i)),
            _ => {}
        }
    });
}

/// The current caller's open lines go out now (`sys.stdout.flush()`).
pub fn flush_current() {
    flush(CURRENT_CALLER.with(|c| c.get()));
}

/// `caller`'s request ended on this thread: its open lines go out now rather than on
/// the handler's timer. Nothing is sent when it left none.
pub fn end_request(caller: LocalPid) {
    flush(Some(caller));
}

fn flush(caller: Option<LocalPid>) {
    let had_open = OPEN_LINES.with(|lines| {
        let mut lines = lines.borrow_mut();
        let before = lines.len();
        lines.retain(|&(c, _)| c != caller);
        lines.len() != before
    });
    if had_open {
        send_for(caller, |e, who| (crate::atoms::py_output_flush(), who).encode(e));
    }
}

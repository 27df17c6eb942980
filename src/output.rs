//! Where Python's output and tracebacks go: the output handler process, and the Erlang
//! process whose request runs on this thread (its group leader receives the output).
//!
//! The handler (`py_output`) forwards whole lines and holds a line's start until its end
//! arrives. This side remembers which callers left a line open on this thread, so that
//! the end of their request (or a `flush()`) tells the handler to send it without waiting
//! for its timer; writes that end a line cost nothing more.
//!
//! What waits in the handler's mailbox is bounded here, where it is sent: a process
//! cannot see its own queue fill, and a handler held up (descheduled, or blocked in a
//! slow `logger` handler) would otherwise let Python fill it as fast as it writes. Each
//! message counts for its payload plus `MESSAGE_COST` bytes until the handler takes it
//! (`taken`); past `MAX_BACKLOG_BYTES` a message is dropped and counted, and the first
//! drop after the handler last collected them (`take_drops`) sends it a notice.

use crate::msg_env::{MsgEnv, OwnedTerm};
use backlog::{Admit, Backlog};
pub use backlog::{Drops, Payload};
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

/// Bytes that may wait in the handler's mailbox (always at least one message).
pub const MAX_BACKLOG_BYTES: usize = 8 * 1024 * 1024;
/// What a message counts for beyond its payload: the tuple, the caller, the envelope.
pub const MESSAGE_COST: usize = 128;

/// The handler process and what it has not taken yet.
struct Handler {
    pid: Option<LocalPid>,
    backlog: Backlog,
}

static HANDLER: Mutex<Handler> = Mutex::new(Handler { pid: None, backlog: Backlog::new(MAX_BACKLOG_BYTES, MESSAGE_COST) });

fn handler() -> std::sync::MutexGuard<'static, Handler> {
    // Held for a few arithmetic steps that cannot panic, so never poisoned in practice;
    // if it were, the counts in it are still whole.
    HANDLER.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Set the process whose request runs on this thread; answers the previous one.
pub fn set_current_caller(pid: Option<LocalPid>) -> Option<LocalPid> {
    CURRENT_CALLER.with(|c| c.replace(pid))
}

/// A new handler (at start, or after its restart): what was sent to the one before is
/// gone with it, so nothing of it counts any more.
pub fn set_output_handler(pid: LocalPid) {
    let mut handler = handler();
    handler.pid = Some(pid);
    handler.backlog.reset();
}

/// The handler took a message that counted for `cost` bytes.
pub fn taken(cost: usize) {
    handler().backlog.taken(cost);
}

/// The drops the handler has not collected yet; they count as collected now.
pub fn take_drops() -> Drops {
    handler().backlog.take_drops()
}

/// Send `{py_handler, Cost, {Tag, Caller | undefined, Payload...}}` to the output handler
/// process, or drop it when the handler's backlog is full. `payload_len` is the size of
/// the text the message carries.
pub fn send_to_output_handler(
    kind: Payload,
    payload_len: usize,
    build: impl for<'a> FnOnce(rustler::Env<'a>, rustler::Term<'a>) -> rustler::Term<'a>,
) {
    send_for(CURRENT_CALLER.with(|c| c.get()), kind, payload_len, build);
}

fn send_for(
    caller: Option<LocalPid>,
    kind: Payload,
    payload_len: usize,
    build: impl for<'a> FnOnce(rustler::Env<'a>, rustler::Term<'a>) -> rustler::Term<'a>,
) {
    let (pid, admitted) = {
        let mut handler = handler();
        let Some(pid) = handler.pid else { return };
        (pid, handler.backlog.admit(kind, payload_len))
    };
    let msg = match admitted {
        Admit::Send(cost) => OwnedTerm::build(MsgEnv::new(), |e| {
            let who = match caller {
                Some(pid) => pid.encode(e),
                None => crate::atoms::undefined().encode(e),
            };
            (crate::atoms::py_handler(), cost, build(e, who)).encode(e)
        }),
        // Outside the bound, and at most one at a time: the next is sent only after the
        // handler collected the drops this one tells of.
        Admit::DroppedFirst => OwnedTerm::build(MsgEnv::new(), |e| {
            (crate::atoms::py_handler(), 0, crate::atoms::py_output_dropped()).encode(e)
        }),
        Admit::Dropped => return,
    };
    msg.send(&pid);
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
        send_for(caller, Payload::Flush, 0, |e, who| (crate::atoms::py_output_flush(), who).encode(e));
    }
}

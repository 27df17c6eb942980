//! The context actor: one OS thread that owns a Python thread state, an asyncio loop and
//! the namespaces of its callers, serving its mailbox until it is stopped or crashes.

use super::{next_context_id, ContextShared, Mailbox, Msg, Request, CRASHED, RUNNING, STOPPED};
use crate::atoms;
use crate::erlang_module::{set_current_caller, Interrupted};
use crate::execute::Executor;
use crate::msg_env::MsgEnv;
use crossbeam_channel::{Receiver, TryRecvError};
use pyo3::ffi;
use pyo3::prelude::*;
use rustler::{Encoder, LocalPid, Term};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Python recursion and deep term conversion both need room.
const STACK_SIZE: usize = 64 * 1024 * 1024;
/// How long an idle context polls its mailbox before parking: a caller that sends its next
/// request right after a reply is served without a futex wake-up on either side.
/// Longer spins were measured slower on 2 cores: the spinning thread competes with the
/// BEAM schedulers for the CPU the caller needs.
const SPIN: std::time::Duration = std::time::Duration::from_micros(5);

pub struct ContextConfig {
    pub index: u32,
    pub max_queued: usize,
    /// Receives `{py_context_crashed, Why}` when the actor dies of a panic.
    pub owner: LocalPid,
}

enum Exit {
    Stopped,
    Crashed(String),
}

pub fn start(config: ContextConfig) -> std::io::Result<Mailbox> {
    let shared = Arc::new(ContextShared {
        id: next_context_id(),
        max_queued: config.max_queued,
        queued: AtomicUsize::new(0),
        running_req: AtomicU64::new(0),
        thread_ident: AtomicU64::new(0),
        status: AtomicU8::new(RUNNING),
        crash_reason: Mutex::new(None),
    });
    let (tx, rx) = crossbeam_channel::unbounded();
    let mailbox = Mailbox { shared: shared.clone(), tx };
    let actor_mailbox = mailbox.clone();
    let owner = config.owner;
    std::thread::Builder::new()
        .name(format!("py-context-{}", config.index))
        .stack_size(STACK_SIZE)
        .spawn(move || actor_main(actor_mailbox, rx, owner))?;
    Ok(mailbox)
}

fn actor_main(mailbox: Mailbox, rx: Receiver<Msg>, owner: LocalPid) {
    let shared = mailbox.shared.clone();
    // The actor's own mailbox clone must not keep the channel open once everyone else let go.
    let exit = catch_unwind(AssertUnwindSafe(|| {
        Python::attach(|py| match Actor::new(py, mailbox) {
            Ok(mut actor) => actor.serve(py, &rx),
            Err(e) => Exit::Crashed(format!("context start-up failed: {e}")),
        })
    }))
    .unwrap_or_else(|panic| Exit::Crashed(panic_message(&panic)));
    match exit {
        Exit::Stopped => {
            shared.status.store(STOPPED, Ordering::Release);
            drain_after_exit(&rx, &ErrorReason::Stopped);
        }
        Exit::Crashed(why) => {
            *shared.crash_reason.lock().unwrap() = Some(why.clone());
            shared.status.store(CRASHED, Ordering::Release);
            notify_owner(&owner, &why);
            drain_after_exit(&rx, &ErrorReason::Crashed(why));
        }
    }
}

struct Actor {
    shared: Arc<ContextShared>,
    executor: Executor,
    /// Kept alive for the coroutines of later issues; each context owns one loop.
    _event_loop: Py<PyAny>,
}

impl Actor {
    fn new(py: Python<'_>, mailbox: Mailbox) -> PyResult<Actor> {
        let shared = mailbox.shared.clone();
        let ident: u64 = py.import("threading")?.call_method0("get_ident")?.extract()?;
        shared.thread_ident.store(ident, Ordering::Release);
        let asyncio = py.import("asyncio")?;
        let event_loop = asyncio.call_method0("new_event_loop")?;
        asyncio.call_method1("set_event_loop", (&event_loop,))?;
        Ok(Actor { shared, executor: Executor::new(py, mailbox)?, _event_loop: event_loop.unbind() })
    }

    fn serve(&mut self, py: Python<'_>, rx: &Receiver<Msg>) -> Exit {
        loop {
            let msg = match rx.try_recv() {
                Ok(msg) => msg,
                Err(TryRecvError::Empty) => match py.detach(|| wait(rx)) {
                    Some(msg) => msg,
                    None => return Exit::Stopped,
                },
                Err(TryRecvError::Disconnected) => return Exit::Stopped,
            };
            match msg {
                Msg::Run(mut req) => {
                    self.shared.queued.fetch_sub(1, Ordering::AcqRel);
                    let outcome = catch_unwind(AssertUnwindSafe(|| self.run_request(py, &mut req)));
                    if let Err(panic) = outcome {
                        let why = panic_message(&panic);
                        answer_error(&mut req, &ErrorReason::Crashed(why.clone()));
                        return Exit::Crashed(why);
                    }
                }
                Msg::DropEnv(id) => self.executor.drop_env(id),
                Msg::DropObject(object) => drop(object),
                Msg::Stop => return Exit::Stopped,
                Msg::Panic => {
                    if let Err(panic) = catch_unwind(|| panic!("panic requested by py_nif:context_panic/1")) {
                        return Exit::Crashed(panic_message(&panic));
                    }
                }
            }
        }
    }

    fn run_request(&mut self, py: Python<'_>, req: &mut Request) {
        let state = req.reply.clone();
        if state.as_ref().is_some_and(|s| s.is_cancelled()) {
            return;
        }
        let req_id = state.as_ref().map_or(0, |s| s.id);
        set_current_caller(Some(req.caller));
        self.shared.running_req.store(req_id, Ordering::Release);
        let body = req.body;
        let env_id = req.env_id;
        let executor = &mut self.executor;
        let reply = req.env.with(|env| {
            let body = unsafe { Term::new(env, body) };
            let result = executor.run(py, env, body, env_id);
            let tag = rustler::types::tuple::get_tuple(body).ok().and_then(|f| f.get(1).copied());
            tag.map(|tag| (atoms::py_reply(), tag, result).encode(env).as_c_arg())
        });
        self.shared.running_req.store(0, Ordering::Release);
        set_current_caller(None);
        let Some(state) = state else { return };
        if state.try_reply() {
            if let Some(msg) = reply {
                req.env.send_and_clear(&req.caller, msg);
            }
        } else {
            clear_pending_interrupt(py, &self.shared);
        }
    }
}

/// A cancelled request may leave an `Interrupted` armed that has not fired yet.
fn clear_pending_interrupt(py: Python<'_>, shared: &ContextShared) {
    let ident = shared.thread_ident.load(Ordering::Acquire);
    unsafe { ffi::PyThreadState_SetAsyncExc(ident as _, std::ptr::null_mut()) };
    if let Some(err) = PyErr::take(py) {
        if !err.is_instance_of::<Interrupted>(py) {
            err.restore(py);
        }
    }
}

fn wait(rx: &Receiver<Msg>) -> Option<Msg> {
    let start = std::time::Instant::now();
    loop {
        for _ in 0..32 {
            match rx.try_recv() {
                Ok(msg) => return Some(msg),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => std::hint::spin_loop(),
            }
        }
        if start.elapsed() >= SPIN {
            return rx.recv().ok();
        }
    }
}

enum ErrorReason {
    Crashed(String),
    Stopped,
}

/// Answer `{error, {context_crashed, Why}}` or `{error, context_stopped}` for a request
/// that will never run.
fn answer_error(req: &mut Request, reason: &ErrorReason) {
    let Some(state) = req.reply.clone() else { return };
    if !state.try_reply() {
        return;
    }
    let body = req.body;
    let msg = req.env.with(|env| {
        let body = unsafe { Term::new(env, body) };
        let tag = rustler::types::tuple::get_tuple(body).ok().and_then(|f| f.get(1).copied())?;
        let why = match reason {
            ErrorReason::Crashed(why) => (atoms::context_crashed(), why.as_str()).encode(env),
            ErrorReason::Stopped => atoms::context_stopped().encode(env),
        };
        Some((atoms::py_reply(), tag, (atoms::error(), why)).encode(env).as_c_arg())
    });
    if let Some(msg) = msg {
        req.env.send_and_clear(&req.caller, msg);
    }
}

/// After the actor stopped serving, every request still queued or still arriving (from a
/// NIF that raced the status change) is answered, until the last handle is gone.
fn drain_after_exit(rx: &Receiver<Msg>, reason: &ErrorReason) {
    for msg in rx.iter() {
        match msg {
            Msg::Run(mut req) => answer_error(&mut req, reason),
            // Released through pyo3's deferred reference pool; this thread holds no GIL.
            Msg::DropObject(object) => drop(object),
            _ => {}
        }
    }
}

fn notify_owner(owner: &LocalPid, why: &str) {
    let mut env = MsgEnv::new();
    let msg = env.with(|e| (atoms::py_context_crashed(), why).encode(e).as_c_arg());
    env.send_and_clear(owner, msg);
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}

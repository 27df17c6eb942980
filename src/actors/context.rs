//! The context actor: one OS thread that owns a Python thread state, an asyncio loop and
//! the namespaces of its callers, serving its mailbox until it is stopped or crashes.
//!
//! While Python code waits for an Erlang function (`erlang.call`), the actor keeps serving
//! its mailbox from inside that call (`Actor::serve` with a wait), so an Erlang function
//! that calls back into the same context is served at any depth, and nothing re-runs.

use super::aio::{self, LoopWork};
use super::callback::CallbackTable;
use super::loop_driver::{LoopDriver, StartError};
use crate::mailbox::request::{Answer, CallbackOutcome, ErrorReason};
use crate::mailbox::{next_context_id, ContextShared, Mailbox, Msg, ReqState, Request, CRASHED, RUNNING, STOPPED};
use crate::atoms;
use crate::output::set_current_caller;
use crate::execute::Executor;
use crate::interp::{self, InterpMode};
use crate::py_errors::Site;
use crate::msg_env::{MsgEnv, OwnedTerm, RawTerm};
use crate::mailbox::handles::EnvRes;
use crossbeam_channel::{Receiver, TryRecvError};
use pyo3::ffi;
use pyo3::prelude::*;
use rustler::{Encoder, LocalPid, ResourceArc};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Python recursion and deep term conversion both need room.
const STACK_SIZE: usize = 64 * 1024 * 1024;
/// How long an idle context polls its mailbox before parking: a caller that sends its next
/// request right after a reply is served without a futex wake-up on either side.
/// Longer spins were measured slower on 2 cores: the spinning thread competes with the
/// BEAM schedulers for the CPU the caller needs.
const SPIN: std::time::Duration = std::time::Duration::from_micros(5);
const YIELD_AFTER_ROUNDS: u32 = 4;
/// While requests wait for Erlang, the context serves other callers' requests nested
/// inside the waiting one, up to this many requests deep; past it, only requests of the
/// waiting call chains run, so unrelated load cannot grow the thread's stack without bound.
const UNRELATED_NESTING_LIMIT: usize = 8;
/// When every level waits for Erlang and only deferred requests are left, how long the
/// context waits for an answer before it runs the oldest deferred request anyway: the
/// answers may depend on it (an Erlang function that asks another process to call this
/// context), so waiting longer can deadlock, while running it at once would nest
/// unrelated load on every short wait.
const DEFERRED_GRACE: std::time::Duration = std::time::Duration::from_millis(5);
/// Stack a nested request must leave free: Python recursion and deep term conversion run
/// on the same stack. Past it, nested requests are answered `{error, {call_nesting_too_deep, N}}`.
pub(super) const MIN_STACK_HEADROOM: usize = STACK_SIZE / 4;

pub struct ContextConfig {
    pub index: u32,
    pub max_queued: usize,
    /// Receives `{py_context_crashed, Why}` when the actor dies of a panic.
    pub owner: LocalPid,
    /// The main interpreter, or a sub-interpreter of the context's own.
    pub mode: InterpMode,
    /// Readies a sub-interpreter the context creates (our modules, `sys.path`).
    pub prepare: fn(Python<'_>) -> PyResult<()>,
}

pub enum Exit {
    Stopped,
    Crashed(String),
}

pub fn start(config: ContextConfig) -> std::io::Result<Mailbox> {
    let shared = Arc::new(ContextShared {
        id: next_context_id(),
        max_queued: config.max_queued,
        queued: AtomicUsize::new(0),
        running_req: AtomicU64::new(0),
        interrupt_armed: AtomicBool::new(false),
        event_loop: Mutex::new(None),
        wake_writers: AtomicUsize::new(0),
        thread_ident: AtomicU64::new(0),
        status: AtomicU8::new(RUNNING),
        crash_reason: Mutex::new(None),
        in_selector: AtomicBool::new(false),
        wake_fd: AtomicI32::new(-1),
        quick_reply: crate::mailbox::SpinPolicy::default(),
        own_interrupter: std::sync::OnceLock::new(),
    });
    let (mailbox, rx) = Mailbox::open(shared);
    let actor_mailbox = mailbox.clone();
    let owner = config.owner;
    let (mode, prepare) = (config.mode, config.prepare);
    std::thread::Builder::new()
        .name(format!("py-context-{}", config.index))
        .stack_size(STACK_SIZE)
        .spawn(move || actor_main(actor_mailbox, rx, owner, mode, prepare))?;
    Ok(mailbox)
}

thread_local! {
    static ACTOR: RefCell<Option<Rc<Actor>>> = const { RefCell::new(None) };
}

/// The actor of the current thread, when it is a context thread.
pub fn current_actor() -> Option<Rc<Actor>> {
    ACTOR.with(|a| a.borrow().clone())
}

fn actor_main(mailbox: Mailbox, rx: Receiver<Msg>, owner: LocalPid, mode: InterpMode, prepare: fn(Python<'_>) -> PyResult<()>) {
    // Log events of exceptions name the context they happened in.
    crate::py_errors::set_context(Some(owner));
    let shared = mailbox.shared.clone();
    let drain_rx = rx.clone();
    let exit = catch_unwind(AssertUnwindSafe(|| {
        let served = interp::run_attached(mode, prepare, |py| {
            let watcher = match mode {
                InterpMode::Main => None,
                InterpMode::OwnGil => match start_interrupt_watcher(py, &shared) {
                    Ok(w) => Some(w),
                    Err(e) => return Exit::Crashed(format!("cannot start the interrupt watcher: {e}")),
                },
            };
            let exit = serve_attached(py, mailbox, rx, &shared, &owner);
            // The watcher leaves with the interpreter's GIL, so wait for it detached.
            py.detach(move || drop(watcher));
            exit
        });
        served.unwrap_or_else(Exit::Crashed)
    }))
    .unwrap_or_else(|panic| Exit::Crashed(panic_message(&panic)));
    finish(&shared, &drain_rx, &owner, exit);
}

/// An own-GIL context's interruptions go to a watcher thread attached to its interpreter.
fn start_interrupt_watcher(py: Python<'_>, shared: &Arc<ContextShared>) -> std::io::Result<interp::InterruptWatcher> {
    let target = shared.clone();
    let (watcher, requests) = interp::InterruptWatcher::start(py, format!("py-interrupt-{}", shared.id), move |py, req_id| {
        super::interrupt::interrupt(py, &target, req_id)
    })?;
    let _ = shared.own_interrupter.set(requests);
    Ok(watcher)
}

/// Open the actor and serve its mailbox until it stops or crashes, then answer what is
/// left and close its loop, all attached to the context's interpreter.
fn serve_attached(py: Python<'_>, mailbox: Mailbox, rx: Receiver<Msg>, shared: &Arc<ContextShared>, owner: &LocalPid) -> Exit {
        match Actor::new(py, mailbox, rx) {
            Ok(actor) => {
                notify_ready(owner, actor.shared.id);
                let actor = Rc::new(actor);
                ACTOR.with(|a| *a.borrow_mut() = Some(actor.clone()));
                let exit = actor.serve(py, None).err().unwrap_or(Exit::Stopped);
                ACTOR.with(|a| *a.borrow_mut() = None);
                crate::interp_kit::leave_context();
                let reason = || match &exit {
                    Exit::Stopped => ErrorReason::Stopped,
                    Exit::Crashed(why) => ErrorReason::Crashed(why.clone()),
                };
                let deferred: Vec<Request> = actor.deferred.borrow_mut().drain(..).collect();
                for req in deferred {
                    req.reply(Answer::Error(reason()));
                }
                let abandoned = actor.work.abandon_all();
                for req in abandoned {
                    req.reply(Answer::Error(reason()));
                }
                // Tasks still on the loop wind down and the loop closes; the wake-up
                // eventfd goes with the mailbox.
                actor.driver.close(py, shared);
                // The actor, its namespaces and py objects are released here, with the GIL.
                drop(actor);
                exit
            }
            Err(StartError::MissingApi(why)) => Exit::Crashed(why),
            Err(StartError::Python(e)) => Exit::Crashed(format!("context start-up failed: {e}")),
        }
}

/// After the actor left: record how, answer what is still queued, tell the owner.
fn finish(shared: &Arc<ContextShared>, drain_rx: &Receiver<Msg>, owner: &LocalPid, exit: Exit) {
    // Nothing reads the eventfd any more (the loop is closed).
    shared.close_wake_fd();
    match exit {
        Exit::Stopped => {
            shared.status.store(STOPPED, Ordering::Release);
            drain_after_exit(drain_rx, || ErrorReason::Stopped);
        }
        Exit::Crashed(why) => {
            *shared.crash_reason.lock().unwrap() = Some(why.clone());
            shared.status.store(CRASHED, Ordering::Release);
            notify_owner(owner, &why);
            drain_after_exit(drain_rx, || ErrorReason::Crashed(why.clone()));
        }
    }
    // Its owner waits for this in `terminate`, so that a stop returns once the loop's
    // tasks wound down and its sockets closed.
    notify_exited(owner, shared.id);
    // The thread ends here, dropping the last receiver: a request that a NIF queued after
    // the drain (it raced the status change) is dropped with the channel, and its `Drop`
    // answers it; later submissions fail on the status or the closed channel.
}

/// The request whose Python code runs now; requests nest while Python waits for Erlang.
#[derive(Clone)]
pub struct Current {
    pub caller: LocalPid,
    /// The request's `Ref`, a term of the request's own environment (alive meanwhile).
    pub tag: Option<RawTerm>,
    pub caller_waits: bool,
    pub state: Option<Arc<ReqState>>,
    pub local_env: Option<ResourceArc<EnvRes>>,
}

/// A wait for the answer of an Erlang function called from Python.
pub struct CallbackWait {
    pub id: u64,
    /// The request that made the call: when it is cancelled, the wait is abandoned.
    pub state: Option<Arc<ReqState>>,
}

pub struct Actor {
    pub shared: Arc<ContextShared>,
    pub mailbox: Mailbox,
    rx: Receiver<Msg>,
    executor: Executor,
    current: RefCell<Vec<Current>>,
    /// The Erlang functions this context's Python code waits for.
    callbacks: CallbackTable,
    /// Requests put aside while nesting was too deep for them.
    deferred: RefCell<VecDeque<Request>>,
    /// Set when a nested serve had to stop the context; outer levels unwind to the top.
    pending_exit: RefCell<Option<Exit>>,
    /// Messages handled so far, at any depth: tells whether Python code run by a check
    /// re-entered the actor meanwhile.
    handled: std::cell::Cell<u64>,
    /// The asyncio loop and the private API it is driven through (fixed at start-up).
    driver: LoopDriver,
    /// The requests running as tasks or streams on that loop.
    work: LoopWork,
}

impl Actor {
    fn new(py: Python<'_>, mailbox: Mailbox, rx: Receiver<Msg>) -> Result<Actor, StartError> {
        let shared = mailbox.shared.clone();
        // A context start is where a restarted application gets its modules back.
        crate::module_guard::restore(py)?;
        let ident: u64 = py.import("threading")?.call_method0("get_ident")?.extract()?;
        shared.thread_ident.store(ident, Ordering::Release);
        let driver = LoopDriver::open(py, &shared)?;
        let actor = Actor {
            shared,
            executor: Executor::new(py, mailbox.clone())?,
            mailbox,
            rx,
            current: RefCell::new(Vec::new()),
            callbacks: CallbackTable::default(),
            deferred: RefCell::new(VecDeque::new()),
            pending_exit: RefCell::new(None),
            handled: std::cell::Cell::new(0),
            driver,
            work: LoopWork::default(),
        };
        // The classes of this context's interpreter, at hand while it serves (`interp_kit`).
        crate::interp_kit::enter_context(py)?;
        // Objects a context of this interpreter left behind when it went.
        crate::mailbox::orphans::release_mine(py);
        Ok(actor)
    }

    pub fn executor(&self) -> &Executor {
        &self.executor
    }

    pub fn loop_driver(&self) -> &LoopDriver {
        &self.driver
    }

    pub fn loop_work(&self) -> &LoopWork {
        &self.work
    }

    pub fn callbacks(&self) -> &CallbackTable {
        &self.callbacks
    }


    /// One iteration of the asyncio loop: ready callbacks, then the selector (blocking
    /// until a timer, I/O, or the mailbox's wake-up).
    fn run_loop_once(&self, py: Python<'_>) {
        self.shared.quick_reply.mark_busy();
        self.shared.in_selector.store(true, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
        if !self.rx.is_empty() {
            self.shared.in_selector.store(false, Ordering::SeqCst);
            return;
        }
        self.driver.set_running(py, true);
        self.shared.running_req.store(crate::mailbox::IN_LOOP, Ordering::Release);
        let result = self.driver.run_once(py);
        self.shared.running_req.store(0, Ordering::Release);
        // An interruption aimed at a task step that ended meanwhile must not hit the next.
        clear_pending_interrupt(py, &self.shared);
        self.driver.set_running(py, false);
        self.shared.in_selector.store(false, Ordering::SeqCst);
        // A task re-raises `SystemExit` and `KeyboardInterrupt` after storing them as its
        // result (its done-callback answers the caller on a later turn); a bare callback
        // of the user's may raise anything. None of it may reach `PyErr_Print`, which
        // finalizes the interpreter for `SystemExit`: it is logged, and the loop goes on.
        if let Err(e) = result {
            if !crate::interp_kit::is_interrupted(py, &e) {
                crate::py_errors::log_exception(py, &e);
            }
        }
    }

    /// The innermost running request, if any.
    pub fn current(&self) -> Option<Current> {
        self.current.borrow().last().cloned()
    }

    /// Serve the mailbox. Without a wait: until the context stops. With one: until that
    /// callback is answered or abandoned (`Ok`), or the context must stop (`Err`).
    pub fn serve(&self, py: Python<'_>, wait: Option<&CallbackWait>) -> Result<(), Exit> {
        let Some(wait) = wait else {
            return self.serve_loop(py, None, None);
        };
        // A coroutine's task that calls Erlang synchronously waits for its own request:
        // when that is cancelled (a timeout, a dead caller), the wait is abandoned, or the
        // whole loop would wait with it.
        let task_state = match &wait.state {
            None if self.current.borrow().is_empty() => self.current_task_state(py),
            _ => None,
        };
        // (The caller cleared `running_req` for the wait: a cancel is noticed here instead.)
        self.serve_loop(py, Some(wait), task_state)
    }

    /// `task_state`: the request of the loop task making the call, when `wait` has none.
    fn serve_loop(&self, py: Python<'_>, wait: Option<&CallbackWait>, task_state: Option<Arc<ReqState>>) -> Result<(), Exit> {
        loop {
            // A stop or crash noticed at any depth (a nested serve may have taken the Stop
            // message) ends this level too, whatever path the last turn took.
            if let Some(exit) = self.pending_exit.borrow_mut().take() {
                return Err(exit);
            }
            if let Some(wait) = wait {
                if self.callbacks.is_answered(wait.id) {
                    return Ok(());
                }
                if wait.state.as_ref().or(task_state.as_ref()).is_some_and(|s| s.is_cancelled()) {
                    self.callbacks.abandon(wait.id);
                    return Ok(());
                }
            }
            if let Some(req) = self.take_deferred() {
                self.run(py, req)?;
                continue;
            }
            let msg = match self.rx.try_recv() {
                Ok(msg) => msg,
                // The loop runs at the top level only: asyncio tasks cannot nest.
                Err(TryRecvError::Empty) if wait.is_none() && self.loop_has_work(py) => {
                    self.run_loop_once(py);
                    continue;
                }
                Err(TryRecvError::Empty) if wait.is_some() && !self.deferred.borrow().is_empty() => {
                    // Every level waits, and only requests put aside are left: they may be
                    // what the waits need (see `DEFERRED_GRACE`).
                    let rx = &self.rx;
                    match py.detach(|| rx.recv_timeout(DEFERRED_GRACE)) {
                        Ok(msg) => msg,
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                            let oldest = self.deferred.borrow_mut().pop_front();
                            if let Some(req) = oldest {
                                self.run(py, req)?;
                            }
                            continue;
                        }
                        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Err(Exit::Stopped),
                    }
                }
                Err(TryRecvError::Empty) => {
                    let rx = &self.rx;
                    // Idle only at the top level: a nested wait belongs to a running request.
                    // Cleared when a request or the loop runs (`handle`, `run_loop_once`).
                    if wait.is_none() {
                        self.shared.quick_reply.mark_idle();
                    }
                    let msg = py.detach(|| wait_for_message(rx));
                    match msg {
                        Some(msg) => msg,
                        None => return Err(Exit::Stopped),
                    }
                }
                Err(TryRecvError::Disconnected) => return Err(Exit::Stopped),
            };
            if matches!(msg, Msg::Run(_)) {
                self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            }
            self.handle(py, msg)?;
        }
    }

    /// Whether the loop has anything to run: a request's task or stream, or callbacks,
    /// timers or fds of the user's.
    fn loop_has_work(&self, py: Python<'_>) -> bool {
        if !self.work.is_empty() {
            return true;
        }
        // The check can run Python code (a timer heap of the user's with `__len__`) that
        // calls Erlang and so serves messages, starting tasks the check has already
        // looked past: then the loop runs, rather than the context sleeping on them.
        let handled = self.handled.get();
        self.driver.has_pending(py) || self.handled.get() != handled
    }

    /// Whether `req` may run now, at the current nesting depth.
    fn may_run(&self, req: &Request) -> bool {
        let current = self.current.borrow();
        current.len() < UNRELATED_NESTING_LIMIT
            || current.iter().any(|c| c.caller == req.caller)
            || self.callbacks.has_joined(&req.caller)
    }

    fn take_deferred(&self) -> Option<Request> {
        let mut deferred = self.deferred.borrow_mut();
        let at = deferred.iter().position(|r| self.may_run(r))?;
        deferred.remove(at)
    }

    /// A nested serve ended with `exit`: unwind every level and leave the thread.
    pub fn stop_after_unwinding(&self, exit: Exit) {
        *self.pending_exit.borrow_mut() = Some(exit);
    }

    fn handle(&self, py: Python<'_>, msg: Msg) -> Result<(), Exit> {
        self.handled.set(self.handled.get().wrapping_add(1));
        match msg {
            Msg::Run(req) => {
                // Control messages below are short and leave an idle context idle.
                self.shared.quick_reply.mark_busy();
                if !self.may_run(&req) {
                    req.stop_caller_polling();
                    self.deferred.borrow_mut().push_back(req);
                    return Ok(());
                }
                return self.run(py, req);
            }
            Msg::DropEnv(id) => self.executor.drop_env(id),
            Msg::DropObject(object, _) => drop(object),
            Msg::CallbackReply(id, answer) => match self.callbacks.take_future(id) {
                Some(future) => super::callback::resolve_future(py, future.bind(py), &answer),
                None => self.callbacks.answered(id, CallbackOutcome::Answered(answer)),
            },
            Msg::CallbackAbort(id, gone) => match self.callbacks.take_future(id) {
                Some(future) => super::callback::abort_future(py, future.bind(py)),
                None => self.callbacks.aborted(id, gone),
            },
            Msg::JoinChain(id, pid, watch) => self.callbacks.join(id, pid, watch),
            Msg::Cancelled(id) => self.cancel_async(py, id),
            Msg::Credit(id, n) => self.grant_stream_credit(py, id, n),
            Msg::Stop => return Err(Exit::Stopped),
            Msg::Panic => {
                if let Err(panic) = catch_unwind(|| panic!("panic requested by py_nif:context_panic/1")) {
                    return Err(Exit::Crashed(panic_message(&panic)));
                }
            }
        }
        Ok(())
    }

    /// Run a request now, at the current depth (the nesting policy has let it through).
    fn run(&self, py: Python<'_>, req: Request) -> Result<(), Exit> {
        req.mark_started();
        if !self.current.borrow().is_empty() && crate::convert::remaining_stack().is_some_and(|left| left < MIN_STACK_HEADROOM) {
            req.stop_caller_polling();
            let depth = self.current.borrow().len();
            req.reply(Answer::Error(ErrorReason::TooDeep(depth)));
            return Ok(());
        }
        if req.is_async() {
            req.stop_caller_polling();
            return match catch_unwind(AssertUnwindSafe(|| aio::start(self, py, req))) {
                Ok(()) => Ok(()),
                Err(panic) => Err(Exit::Crashed(panic_message(&panic))),
            };
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| self.run_request(py, &req)));
        match outcome {
            Ok(Some(answer)) => {
                // Finishing a top-level request for a polling caller: its next call may
                // poll at once.
                if req.is_polled() && self.current.borrow().is_empty() {
                    self.shared.quick_reply.mark_idle();
                }
                if req.reply(answer) {
                    // Cancelled meanwhile: its interruption must not hit what runs next.
                    clear_pending_interrupt(py, &self.shared);
                }
                Ok(())
            }
            // Cancelled before it ran: nobody waits for it.
            Ok(None) => {
                req.disarm();
                Ok(())
            }
            Err(panic) => {
                let why = panic_message(&panic);
                req.reply(Answer::Error(ErrorReason::Crashed(why.clone())));
                Err(Exit::Crashed(why))
            }
        }
    }

    /// Run a synchronous request's job, and say how to answer it (`None`: it was
    /// cancelled before it ran).
    fn run_request(&self, py: Python<'_>, req: &Request) -> Option<Answer> {
        if req.is_cancelled() {
            return None;
        }
        let env_id = req.namespace_id();
        self.current.borrow_mut().push(Current {
            caller: req.caller,
            tag: Some(req.tag_raw()),
            caller_waits: req.caller_waits,
            state: req.reply.clone(),
            local_env: req.namespace.clone(),
        });
        let outer_caller = set_current_caller(Some(req.caller));
        let outer_req = self.shared.running_req.swap(req.id(), Ordering::AcqRel);
        let traced = crate::trace::enter(py, req.trace(), self.shared.id);
        let result = req.with(|env, job| req.hold(self.executor.run(py, env, job, env_id, |job| Site::of(req, job))));
        drop(traced);
        self.shared.running_req.store(outer_req, Ordering::Release);
        crate::output::end_request(req.caller);
        set_current_caller(outer_caller);
        self.current.borrow_mut().pop();
        // A stop or crash noticed while this request waited for Erlang: its Python code
        // was ended by `Interrupted("the context is stopping")`, and its caller is told
        // why, as a queued request would be.
        Some(match self.pending_exit.borrow().as_ref() {
            Some(Exit::Crashed(why)) => Answer::Error(ErrorReason::Crashed(why.clone())),
            Some(Exit::Stopped) => Answer::Error(ErrorReason::Stopped),
            None => Answer::Result(result),
        })
    }
}

/// A cancelled request may leave an `Interrupted` armed that has not fired yet.
pub(super) fn clear_pending_interrupt(py: Python<'_>, shared: &ContextShared) {
    if !shared.take_interrupt_mark() {
        return;
    }
    let ident = shared.thread_ident.load(Ordering::Acquire);
    // SAFETY: called on the actor thread with the GIL held; a NULL exception clears the
    // thread's pending asynchronous exception.
    unsafe { ffi::PyThreadState_SetAsyncExc(ident as _, std::ptr::null_mut()) };
    if let Some(err) = PyErr::take(py) {
        if !crate::interp_kit::is_interrupted(py, &err) {
            err.restore(py);
        }
    }
}

fn wait_for_message(rx: &Receiver<Msg>) -> Option<Msg> {
    let start = std::time::Instant::now();
    let mut rounds = 0u32;
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
        rounds += 1;
        // After a short spin, give the CPU to a runnable thread (a scheduler with the
        // next caller) rather than burn it: with more busy threads than CPUs, a pure
        // spin takes the CPU from the very thread that would send the next request.
        if rounds >= YIELD_AFTER_ROUNDS {
            std::thread::yield_now();
        }
    }
}

/// After the actor stopped serving, every request still queued is answered.
fn drain_after_exit(rx: &Receiver<Msg>, reason: impl Fn() -> ErrorReason) {
    for msg in rx.try_iter() {
        match msg {
            Msg::Run(req) => {
                req.reply(Answer::Error(reason()));
            }
            // This thread has left its interpreter: the next context of it releases these.
            Msg::DropObject(object, interpreter) => crate::mailbox::orphans::adopt(interpreter, object),
            _ => {}
        }
    }
}

fn notify_owner(owner: &LocalPid, why: &str) {
    OwnedTerm::build(MsgEnv::new(), |e| (atoms::py_context_crashed(), why).encode(e)).send(owner);
}

/// The owner (`py_context:init`) waits for this, so a context that cannot start (its
/// sub-interpreter, say) fails its start instead of crashing after it.
fn notify_ready(owner: &LocalPid, id: u64) {
    OwnedTerm::build(MsgEnv::new(), |e| (atoms::py_context_ready(), id).encode(e)).send(owner);
}

fn notify_exited(owner: &LocalPid, id: u64) {
    OwnedTerm::build(MsgEnv::new(), |e| (atoms::py_context_exited(), id).encode(e)).send(owner);
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

//! Python calling Erlang. `erlang.call(name, *args)` sends
//! `{py_callback, Ref | undefined, Ctx, Id, Name, Args, Env | undefined}` to the Erlang
//! process that runs the function: the caller of the current request when it waits in
//! `receive` for the reply (so the function runs in that process, with its namespace and
//! its context), or the `py_callbacks` dispatcher otherwise. The answer comes back into
//! this context's mailbox (`py_nif:callback_reply/3`); meanwhile the context keeps serving.

use super::context::{current_actor, Actor, CallbackWait};
use crate::mailbox::request::{CallbackOutcome, Gone};
use crate::atoms;
use crate::convert::{conv_to_py, py_to_term, remaining_stack, term_to_py, error_reason_to_py};
use crate::interp_kit::{self, Class};
use crate::msg_env::{MsgEnv, OwnedTerm};
use crate::mailbox::handles::{CallerWatch, ContextRes};
use crate::trace::CallbackSpan;
use pyo3::exceptions::{PyRecursionError, PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use rustler::types::tuple::get_tuple;
use rustler::{Encoder, LocalPid, ResourceArc, Term};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

static NEXT_CALLBACK_ID: AtomicU64 = AtomicU64::new(1);
/// Stack a context thread must still have for `erlang.call` to nest one more level.
/// Each level nests the actor's serve loop, the next request and its Python frames on the
/// same thread stack, whatever Python's recursion limit says. The margin above the
/// context's own limit for nested requests makes a re-entrant chain end here, as a Python
/// `RecursionError` where the chain recurses, rather than as an error answered to the
/// nested request; it covers the Python code of one level (C recursion up to the default
/// recursion limit) and the unwinding.
const CALL_HEADROOM: usize = super::context::MIN_STACK_HEADROOM + 4 * 1024 * 1024;
static DISPATCHER: Mutex<Option<LocalPid>> = Mutex::new(None);
/// Names registered with `py:register_function`, so that `erlang.name` can answer
/// `AttributeError` at once for unknown names.
static REGISTERED: RwLock<Option<HashSet<String>>> = RwLock::new(None);

/// A context's bookkeeping of the Erlang functions its Python code called.
///
/// Answers arrive while Python code runs at any depth (the actor serves its mailbox inside
/// `erlang.call`), so every method borrows inside and hands no guard out, and nothing in
/// here calls Python: a future to resolve is handed back to be resolved after the borrow.
#[derive(Default)]
pub struct CallbackTable {
    inner: RefCell<Callbacks>,
}

#[derive(Default)]
struct Callbacks {
    /// Synchronous calls waiting for their answer (answers for other ids are dropped).
    waiting: HashSet<u64>,
    answers: HashMap<u64, CallbackOutcome>,
    /// Processes running an Erlang function for a waiting call on another process's
    /// behalf (`py_nif:join_chain/2`): part of that call chain, each watched until the
    /// call is answered (dropping the watch ends its monitor).
    joined: Vec<(u64, LocalPid, ResourceArc<CallerWatch>)>,
    /// Futures of `erlang.async_call` awaiting their Erlang answer, with the call's span
    /// (ended when the future is taken).
    futures: HashMap<u64, (Py<PyAny>, Option<CallbackSpan>)>,
    /// The watches of the processes running the functions of those futures.
    future_runners: HashMap<u64, ResourceArc<CallerWatch>>,
}

impl CallbackTable {
    /// Start waiting for the answer of call `id`.
    pub fn expect(&self, id: u64) {
        self.inner.borrow_mut().waiting.insert(id);
    }

    /// Resolve `future` with the answer of call `id` when it arrives.
    pub fn expect_future(&self, id: u64, future: Py<PyAny>, span: Option<CallbackSpan>) -> Option<(Py<PyAny>, Option<CallbackSpan>)> {
        self.inner.borrow_mut().futures.insert(id, (future, span))
    }

    /// Stop waiting for call `id` and take its outcome.
    pub fn take(&self, id: u64) -> Option<CallbackOutcome> {
        let mut inner = self.inner.borrow_mut();
        inner.waiting.remove(&id);
        inner.joined.retain(|(cb, _, _)| *cb != id);
        inner.answers.remove(&id)
    }

    pub fn is_answered(&self, id: u64) -> bool {
        self.inner.borrow().answers.contains_key(&id)
    }

    /// The wait for call `id` ends without an answer.
    pub fn abandon(&self, id: u64) {
        self.inner.borrow_mut().answers.insert(id, CallbackOutcome::Abandoned);
    }

    /// The future of `erlang.async_call` `id`, which its answer resolves.
    pub fn take_future(&self, id: u64) -> Option<Py<PyAny>> {
        let mut inner = self.inner.borrow_mut();
        inner.future_runners.remove(&id);
        let taken = inner.futures.remove(&id);
        taken.map(|(future, _span)| future)
    }

    /// The answer of synchronous call `id` came: kept for its waiter, if any.
    pub fn answered(&self, id: u64, answer: CallbackOutcome) {
        let mut inner = self.inner.borrow_mut();
        if inner.waiting.contains(&id) {
            inner.answers.insert(id, answer);
        }
    }

    /// The process running call `id` (`gone` says which) exited without answering.
    pub fn aborted(&self, id: u64, gone: Gone) {
        let mut inner = self.inner.borrow_mut();
        if inner.waiting.contains(&id) {
            let outcome = match gone {
                Gone::Caller => CallbackOutcome::Abandoned,
                Gone::Runner => CallbackOutcome::RunnerDied,
            };
            inner.answers.entry(id).or_insert(outcome);
        }
    }

    /// `pid` runs the function of call `id` (a waiting call's chain, or a future's), and
    /// `watch` aborts the call if it dies before answering.
    pub fn join(&self, id: u64, pid: LocalPid, watch: ResourceArc<CallerWatch>) {
        let mut inner = self.inner.borrow_mut();
        if inner.waiting.contains(&id) {
            inner.joined.push((id, pid, watch));
        } else if inner.futures.contains_key(&id) {
            inner.future_runners.insert(id, watch);
        }
    }

    /// Whether `pid` runs a function for one of the waiting calls.
    pub fn has_joined(&self, pid: &LocalPid) -> bool {
        self.inner.borrow().joined.iter().any(|(_, p, _)| p == pid)
    }
}

pub fn set_dispatcher(pid: LocalPid) {
    *DISPATCHER.lock().unwrap() = Some(pid);
}

/// The `py_callbacks` process (it may have exited since: the application stopped).
pub fn dispatcher() -> Option<LocalPid> {
    *DISPATCHER.lock().unwrap()
}

pub fn set_registered(name: String, registered: bool) {
    let mut names = REGISTERED.write().unwrap();
    let names = names.get_or_insert_with(HashSet::new);
    if registered {
        names.insert(name);
    } else {
        names.remove(&name);
    }
}

pub fn clear_registered() {
    *REGISTERED.write().unwrap() = None;
}

pub fn is_registered(name: &str) -> bool {
    REGISTERED.read().unwrap().as_ref().is_some_and(|n| n.contains(name))
}

/// Run the Erlang function registered as `name` and answer its result as Python.
/// From a thread that is not a context's, the dispatcher runs it (`thread_call`).
pub fn call_erlang(py: Python<'_>, name: &str, args: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
    match current_actor() {
        Some(actor) => actor.call_erlang(py, name, args),
        None => super::thread_call::call(py, name, args),
    }
}

impl Actor {
    /// `erlang.call` on this context's thread: the answer comes through the mailbox,
    /// which this context serves meanwhile.
    fn call_erlang(&self, py: Python<'_>, name: &str, args: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
        ensure_stack_headroom()?;
        let current = self.current();
        if current.as_ref().and_then(|c| c.state.as_ref()).is_some_and(|s| s.is_cancelled()) {
            return Err(interp_kit::error(py, Class::Interrupted, "the Erlang caller gave up waiting"));
        }
        let id = NEXT_CALLBACK_ID.fetch_add(1, Ordering::Relaxed);
        let caller_waits = current.as_ref().is_some_and(|c| c.caller_waits && c.tag.is_some());
        let target = if caller_waits {
            current.as_ref().map(|c| c.caller)
        } else {
            *DISPATCHER.lock().unwrap()
        }
        .ok_or_else(|| PyRuntimeError::new_err("erlang_python is not running"))?;

        let tag = current.as_ref().and_then(|c| c.tag).filter(|_| caller_waits);
        let local_env = current.as_ref().and_then(|c| c.local_env.clone());
        let span = crate::trace::callback_span(py, name, self.shared.id);
        let msg = callback_message(&self.mailbox, id, name, args, tag, local_env, span.as_ref())?;

        // A caller that dies while its function runs must not leave this context waiting.
        let watch = ResourceArc::new(CallerWatch { mailbox: self.mailbox.clone(), callback_id: id, gone: Gone::Caller });
        if caller_waits {
            watch.monitor(None, &target);
        }
        self.callbacks().expect(id);
        if caller_waits {
            // The caller may still be polling for a quick reply: it must run this in `receive`.
            if let Some(state) = current.as_ref().and_then(|c| c.state.as_ref()) {
                state.stop_spinning();
            }
        }
        // Converting the arguments may have taken long: the caller may have given up meanwhile
        // and flushed its mailbox. Sending and cancelling exclude each other, so either the
        // message is sent before the cancel returns (and the caller's flush takes it), or it
        // is never sent.
        let state = current.as_ref().and_then(|c| c.state.clone()).filter(|_| caller_waits);
        let sent = match &state {
            Some(state) => state.send_unless_cancelled(|| msg.send(&target)),
            None => Some(msg.send(&target)),
        };
        match sent {
            Some(true) => {}
            Some(false) => {
                self.callbacks().take(id);
                return Err(interp_kit::error(py, Class::ProcessError, "the Erlang process that should run the function is gone"));
            }
            None => {
                self.callbacks().take(id);
                return Err(interp_kit::error(py, Class::Interrupted, "the Erlang caller gave up waiting"));
            }
        }
        let wait = CallbackWait { id, state: current.and_then(|c| c.state) };
        // While it waits, this request runs no Python: an interrupt aimed at it must not fire
        // in a request served meanwhile (a cancel is noticed through its state instead).
        let waiting_req = self.shared.running_req.swap(0, Ordering::AcqRel);
        let served = self.serve(py, Some(&wait));
        self.shared.running_req.store(waiting_req, Ordering::Release);
        drop(watch);
        let outcome = self.callbacks().take(id);
        if let Err(exit) = served {
            self.stop_after_unwinding(exit);
            return Err(interp_kit::error(py, Class::Interrupted, "the context is stopping"));
        }
        let answer = match outcome {
            Some(CallbackOutcome::Answered(answer)) => answer.with(|_, term| answer_to_py(py, term)),
            Some(CallbackOutcome::RunnerDied) => Err(runner_died(py)),
            _ => Err(interp_kit::error(py, Class::Interrupted, "the Erlang caller gave up waiting")),
        };
        if let (Some(span), Err(e)) = (&span, &answer) {
            span.failed(&e.to_string());
        }
        answer
    }
}

/// `RecursionError` when one more nested `erlang.call` could overflow the context's
/// stack: a re-entrant chain ends cleanly however high Python's recursion limit is set.
fn ensure_stack_headroom() -> PyResult<()> {
    match remaining_stack() {
        Some(left) if left < CALL_HEADROOM => Err(PyRecursionError::new_err(format!(
            "erlang.call nested too deeply: less than {} MiB of the context's stack is left",
            CALL_HEADROOM / (1024 * 1024)
        ))),
        _ => Ok(()),
    }
}

/// `{py_callback, Tag | undefined, Ctx, Id, Name, Args, Env | undefined}`, with the
/// call span's `Traceparent` as an eighth element when the call is traced.
fn callback_message(
    mailbox: &crate::mailbox::Mailbox,
    id: u64,
    name: &str,
    args: &Bound<'_, PyTuple>,
    tag: Option<crate::msg_env::RawTerm>,
    local_env: Option<ResourceArc<crate::mailbox::handles::EnvRes>>,
    span: Option<&CallbackSpan>,
) -> PyResult<OwnedTerm> {
    OwnedTerm::try_build(MsgEnv::new(), |e| -> PyResult<_> {
        let mut items = Vec::with_capacity(args.len());
        for arg in args.iter() {
            items.push(py_to_term(e, &arg).map_err(conv_to_py)?);
        }
        let tag = match tag {
            // SAFETY: `tag` is the `Ref` of the request making this call, a term of that
            // request's environment, which lives (uncleared) until the request is answered,
            // after this call returns; the copy is made in `e`, alive for this closure.
            Some(tag) => unsafe { Term::new(e, rustler::sys::enif_make_copy(e.as_c_arg(), tag)) },
            None => atoms::undefined().encode(e),
        };
        let local_env = match local_env {
            Some(res) => res.encode(e),
            None => atoms::undefined().encode(e),
        };
        let ctx = ResourceArc::new(ContextRes::view(mailbox.clone()));
        let name_bin = crate::convert::py_bytes_to_binary(e, name.as_bytes());
        let fields = [atoms::py_callback().encode(e), tag, ctx.encode(e), id.encode(e), name_bin, items.encode(e), local_env];
        Ok(match span.and_then(|s| s.traceparent()) {
            None => rustler::types::tuple::make_tuple(e, &fields),
            Some(traceparent) => {
                let mut traced = fields.to_vec();
                traced.push(crate::convert::py_bytes_to_binary(e, traceparent.as_bytes()));
                rustler::types::tuple::make_tuple(e, &traced)
            }
        })
    })
}

/// `await erlang.async_call(name, *args)`: a future on the running loop, resolved when
/// the Erlang function (run by the dispatcher) answers; the loop keeps running meanwhile.
/// On the context's own loop the context's mailbox brings the answer; any other loop
/// (one the user's code runs, on the context thread or in a thread of its own) gets it
/// through `thread_call`, since the context may be busy running that very loop.
pub fn async_call_erlang(py: Python<'_>, name: &str, args: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
    let actor = current_actor();
    let running = match &actor {
        Some(actor) => actor.loop_driver().running_loop(py)?,
        None => super::loop_driver::running_loop_of_thread(py)?,
    };
    let own_loop = actor.as_ref().is_some_and(|actor| {
        running.as_ref().is_none_or(|running| running.is(actor.loop_driver().event_loop(py)))
    });
    match actor {
        Some(actor) if own_loop => actor.async_call_erlang(py, name, args),
        actor => {
            let running = running.ok_or_else(|| {
                PyRuntimeError::new_err("erlang.async_call needs a running asyncio loop outside an erlang_python context")
            })?;
            // The answer for a foreign loop is set by a shared thread attached to the
            // main interpreter: it must never touch a sub-interpreter's objects.
            if crate::interp::current_id(py) != 0 {
                return Err(PyRuntimeError::new_err(
                    "erlang.async_call on an event loop other than the context's own is not available in a sub-interpreter context; await it on the context's loop, or use erlang.call from a thread",
                ));
            }
            let origin = actor.map(|actor| super::thread_call::Origin {
                mailbox: actor.mailbox.clone(),
                local_env: actor.current().and_then(|c| c.local_env),
            });
            super::thread_call::async_call(name, args, &running, origin)
        }
    }
}

impl Actor {
    /// `erlang.async_call` awaited on this context's own loop: the answer comes through
    /// the mailbox, and resolves the future as it is handled.
    fn async_call_erlang(&self, py: Python<'_>, name: &str, args: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
        let dispatcher = (*DISPATCHER.lock().unwrap()).ok_or_else(|| PyRuntimeError::new_err("erlang_python is not running"))?;
        let future = self.loop_driver().create_future(py)?;
        let id = NEXT_CALLBACK_ID.fetch_add(1, Ordering::Relaxed);
        let local_env = self.current().and_then(|c| c.local_env);
        let span = crate::trace::callback_span(py, name, self.shared.id);
        let msg = callback_message(&self.mailbox, id, name, args, None, local_env, span.as_ref())?;
        if !msg.send(&dispatcher) {
            return Err(interp_kit::error(py, Class::ProcessError, "the erlang_python dispatcher is gone"));
        }
        // The answer is handled on this thread, after this returns: registering now is in time.
        drop(self.callbacks().expect_future(id, future.clone().unbind(), span));
        Ok(future.unbind())
    }
}

/// Fail an `async_call` future whose Erlang function's process died without answering.
pub fn abort_future(py: Python<'_>, future: &Bound<'_, PyAny>) {
    if future.call_method0("done").and_then(|d| d.is_truthy()).unwrap_or(true) {
        return;
    }
    let _ = future.call_method1("set_exception", (runner_died(py).value(py),));
}

fn runner_died(py: Python<'_>) -> PyErr {
    interp_kit::error(py, Class::ProcessError, "the Erlang process running the function exited without answering")
}

/// Complete an `async_call` future with an Erlang answer.
pub fn resolve_future(py: Python<'_>, future: &Bound<'_, PyAny>, answer: &OwnedTerm) {
    if future.call_method0("done").and_then(|d| d.is_truthy()).unwrap_or(true) {
        return;
    }
    let _ = match answer.with(|_, term| answer_to_py(py, term)) {
        Ok(value) => future.call_method1("set_result", (value,)),
        Err(err) => future.call_method1("set_exception", (err.value(py),)),
    };
}

/// `{ok, Value}` becomes the value; `{error, Reason, Text}` raises `erlang.ErlangError`
/// with `Text` as its message (`py_callbacks` makes it: an Elixir exception's own message,
/// or the formatted reason) and `Reason` in `reason`, whatever it holds: atoms stay
/// `erlang.Atom`, and a fun, port or other term Python has no counterpart for is replaced
/// by its printed text, so the failure stays an `ErlangError` (`convert::error_reason_to_py`).
pub(super) fn answer_to_py(py: Python<'_>, answer: Term) -> PyResult<Py<PyAny>> {
    let fields = get_tuple(answer).map_err(|_| PyTypeError::new_err("malformed Erlang answer"))?;
    match fields.as_slice() {
        [tag, value] if tag.decode::<rustler::Atom>().ok() == Some(atoms::ok()) => {
            Ok(term_to_py(py, *value).map_err(conv_to_py)?.unbind())
        }
        [_, reason, text] => {
            let reason = error_reason_to_py(py, *reason).map_err(conv_to_py)?;
            let text = crate::convert::term_to_py_str(*text).unwrap_or_default();
            let exc = interp_kit::get(py, Class::ErlangError)?.call1((text,))?;
            exc.setattr("reason", reason)?;
            Err(PyErr::from_value(exc))
        }
        _ => Err(PyTypeError::new_err("malformed Erlang answer")),
    }
}


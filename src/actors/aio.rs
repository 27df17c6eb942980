//! Coroutines and streams on a context's own asyncio loop.
//!
//! `async_call`, `async_gather` and collecting an async generator become tasks on the loop;
//! their done-callbacks send the reply. `stream_start` pushes each item of a generator (sync
//! or async) to its owner as `{py_stream, Ref, {data, V}}`, spending credit granted by a
//! controller process that watches how many messages the owner has not read yet, so a slow
//! owner pauses the producer instead of filling memory.

use super::context::Actor;
use super::request::{Answer, CallSpec, Job as RequestJob};
use super::Request;
use crate::atoms;
use crate::convert::py_to_term;
use crate::execute::{failure_to_term, ok_tuple, Failure};
use crate::msg_env::{Held, MsgEnv};
use crate::resources::WorkWatch;
use rustler::{Monitor, ResourceArc};
use std::sync::atomic::Ordering;
use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyDict, PyList, PyModule, PyString, PyTuple};
use rustler::types::tuple::get_tuple;
use rustler::{Encoder, LocalPid, Term};
use std::collections::HashMap;

/// Items a synchronous generator produces per turn of the loop.
const SYNC_BATCH: usize = 1024;

rustler::atoms! { py_stream, data, done, py_stream_credit }

/// The Python side of the loop: the loop itself and the coroutine helpers.
pub struct LoopState {
    pub event_loop: Py<PyAny>,
    /// Parts of the loop `has_work` reads on every idle turn, looked up once: the ready
    /// queue and the selector's fd table are never replaced while the loop lives (the
    /// timer heap is, so it is read through an interned name).
    ready: Py<PyAny>,
    watched_fds: Py<PyAny>,
    scheduled_name: Py<PyString>,
    helpers: Py<PyModule>,
    jobs: HashMap<u64, Job>,
    streams: HashMap<u64, Stream>,
}

/// A task whose result is the reply to a request.
struct Job {
    req: Request,
    task: Py<PyAny>,
    _watch: Option<Watch>,
}

/// A monitor on the process that started a task or stream: when it exits, the work is
/// cancelled (nobody is left to take its result). Removed when the work ends.
struct Watch {
    res: ResourceArc<WorkWatch>,
    mon: Monitor,
}

impl Watch {
    /// Watch `req`'s caller (no watch for fire-and-forget requests). A caller that is
    /// already gone has the request cancelled at once (the message is handled after the
    /// work is registered).
    fn caller_of(actor: &Actor, req: &Request) -> Option<Watch> {
        let state = req.reply.clone()?;
        let res = ResourceArc::new(WorkWatch { mailbox: actor.mailbox.clone(), state: state.clone() });
        // From the actor thread: no caller environment (allowed off the schedulers).
        match res.monitor(None, &req.caller) {
            Some(mon) => Some(Watch { res, mon }),
            None => {
                if state.try_cancel() {
                    actor.mailbox.control(super::Msg::Cancelled(state.id));
                }
                None
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.res.demonitor(None, &self.mon);
    }
}

enum Source {
    Sync(Py<PyAny>),
    Async(Py<PyAny>),
}

struct Stream {
    req: Request,
    /// A reused environment for items.
    out: Option<MsgEnv>,
    owner: LocalPid,
    controller: LocalPid,
    credit: usize,
    source: Source,
    /// A sync stream has a production step queued on the loop.
    step_queued: bool,
    /// An async stream waits for credit on this future.
    credit_future: Option<Py<PyAny>>,
    _watch: Option<Watch>,
}

impl LoopState {
    pub fn new(py: Python<'_>, event_loop: Py<PyAny>) -> PyResult<LoopState> {
        let lp = event_loop.bind(py);
        Ok(LoopState {
            ready: lp.getattr("_ready")?.unbind(),
            watched_fds: lp.getattr("_selector")?.getattr("_fd_to_key")?.unbind(),
            scheduled_name: PyString::intern(py, "_scheduled").unbind(),
            event_loop,
            helpers: py.import("erlang_shim._aio")?.unbind(),
            jobs: HashMap::new(),
            streams: HashMap::new(),
        })
    }

    /// The coroutine helpers (`erlang_shim._aio`).
    pub fn helpers<'py>(&self, py: Python<'py>) -> Bound<'py, PyModule> {
        self.helpers.bind(py).clone()
    }

    /// Every request still waiting for a task or stream (the context is going away).
    pub fn abandon_all(&mut self) -> Vec<Request> {
        let mut reqs: Vec<Request> = self.jobs.drain().map(|(_, j)| j.req).collect();
        reqs.extend(self.streams.drain().map(|(_, s)| s.req));
        reqs
    }

    /// The reply state of the request whose task runs now on the loop (see the task
    /// factory in `_aio.py`), if it is a task or stream of this context.
    pub fn current_task_state(&self, py: Python<'_>) -> Option<std::sync::Arc<super::ReqState>> {
        let table = py.import("asyncio.tasks").ok()?.getattr("_current_tasks").ok()?;
        let task = table.get_item(self.event_loop.bind(py)).ok()?;
        let id: u64 = task.getattr(pyo3::intern!(py, "_erlang_request")).ok()?.extract().ok()?;
        let req = self.jobs.get(&id).map(|j| &j.req).or_else(|| self.streams.get(&id).map(|s| &s.req))?;
        req.reply.clone()
    }

    /// Whether anything is pending on the loop, so that the actor must run it.
    pub fn has_work(&self, py: Python<'_>) -> bool {
        if !self.jobs.is_empty() || !self.streams.is_empty() {
            return true;
        }
        let size = |obj: &Bound<'_, PyAny>| obj.len().unwrap_or(0);
        let scheduled = self.event_loop.bind(py).getattr(self.scheduled_name.bind(py));
        // Two watched fds are ours (the loop's self-pipe and the mailbox wake-up).
        size(self.ready.bind(py)) > 0
            || scheduled.is_ok_and(|s| size(&s) > 0)
            || size(self.watched_fds.bind(py)) > 2
    }
}

/// Start an async request: a task, a stream, or (for values that need no loop) an
/// immediate reply.
pub fn start(actor: &Actor, py: Python<'_>, req: Request) {
    if req.is_cancelled() {
        return end_cancelled_stream(req);
    }
    let env_id = req.namespace_id();
    // The Python run here (the function, listing a sync iterable's first items) is this
    // request's: a timeout interrupts it.
    let outer = actor.shared.running_req.swap(req.id(), Ordering::AcqRel);
    let started = req.with(|env, job| -> Result<Started, (Failure, Option<(LocalPid, LocalPid)>)> {
        let ex = actor.executor();
        let helpers = actor.loop_state().helpers.clone_ref(py);
        let helpers = helpers.bind(py);
        match job {
            RequestJob::AsyncCall { call } => Ok(awaitable_or_value(ex.call_value(py, env_id, call).map_err(|f| (f, None))?)),
            RequestJob::AsyncGather { calls } => {
                let calls: Vec<Term> = calls.decode().map_err(|_| (Failure::BadArg("calls"), None))?;
                let mut values = Vec::with_capacity(calls.len());
                for c in calls {
                    let parts = get_tuple(c).map_err(|_| (Failure::BadArg("calls"), None))?;
                    let empty = Term::map_new(env);
                    let call = match parts.as_slice() {
                        [m, f, a] => CallSpec { module: *m, function: *f, args: *a, kwargs: empty },
                        [m, f, a, kw] => CallSpec { module: *m, function: *f, args: *a, kwargs: *kw },
                        _ => return Err((Failure::BadArg("calls"), None)),
                    };
                    values.push(ex.call_value(py, env_id, call).map_err(|f| (f, None))?);
                }
                let list = PyList::new(py, values).map_err(|e| (e.into(), None))?;
                Ok(Started::Awaitable(helpers.call_method1("gather", (list,)).map_err(|e| (e.into(), None))?.unbind()))
            }
            RequestJob::Stream { call } => collect_or_list(helpers, ex.call_value(py, env_id, call).map_err(|f| (f, None))?).map_err(|e| (e, None)),
            RequestJob::StreamEval { code, locals } => {
                let value = ex.eval_value(py, env_id, code, locals).map_err(|f| (f, None))?;
                collect_or_list(helpers, value).map_err(|e| (e, None))
            }
            RequestJob::StreamStart { call, owner, controller, window } => {
                let value = ex.call_value(py, env_id, call).map_err(|f| (f, Some((owner, controller))))?;
                Ok(Started::Stream { value: value.unbind(), owner, controller, credit: window })
            }
            // Run to completion by `execute`; never started here.
            _ => Err((Failure::BadArg("request"), None)),
        }
    });
    actor.shared.running_req.store(outer, Ordering::Release);
    if req.is_cancelled() {
        super::context::clear_pending_interrupt(py, &actor.shared);
    }
    match started {
        Ok(Started::Value(value)) => reply(py, req, Ok(value.bind(py).clone())),
        Ok(Started::Awaitable(awaitable)) => {
            let id = req.id();
            match spawn_task(actor, py, awaitable.bind(py), id, job_done) {
                Ok(task) => {
                    let watch = Watch::caller_of(actor, &req);
                    actor.loop_state_mut().jobs.insert(id, Job { req, task, _watch: watch });
                }
                Err(e) => reply(py, req, Err(e.into())),
            }
        }
        Ok(Started::Stream { value, owner, controller, credit }) => start_stream(actor, py, req, value, owner, controller, credit),
        Err((failure, Some((owner, controller)))) => {
            req.end_stream(&owner, &controller, |env| failure_to_term(py, env, failure));
        }
        Err((failure, None)) => reply(py, req, Err(failure)),
    }
}

enum Started {
    Value(Py<PyAny>),
    Awaitable(Py<PyAny>),
    Stream { value: Py<PyAny>, owner: LocalPid, controller: LocalPid, credit: usize },
}

fn awaitable_or_value(value: Bound<'_, PyAny>) -> Started {
    let awaitable = value
        .py()
        .import("inspect")
        .and_then(|m| m.call_method1("isawaitable", (&value,)))
        .and_then(|b| b.is_truthy())
        .unwrap_or(false);
    if awaitable {
        Started::Awaitable(value.unbind())
    } else {
        Started::Value(value.unbind())
    }
}

/// An async iterable is collected on the loop. A sync one is listed now when it is short;
/// a longer one is collected on the loop a batch per turn, so that a timeout or a dead
/// caller stops it (an endless C iterator never lets an interruption in).
fn collect_or_list(helpers: &Bound<'_, PyModule>, value: Bound<'_, PyAny>) -> Result<Started, Failure> {
    if helpers.call_method1("is_async_iterable", (&value,))?.is_truthy()? {
        return Ok(Started::Awaitable(helpers.call_method1("collect", (&value,))?.unbind()));
    }
    let iterator = value.try_iter()?;
    let items = helpers.call_method1("first_batch", (&iterator,))?;
    if items.len()? < SYNC_BATCH {
        return Ok(Started::Value(items.unbind()));
    }
    Ok(Started::Awaitable(helpers.call_method1("collect_rest", (items, iterator))?.unbind()))
}

/// Wrap `awaitable` in a task on the actor's loop whose completion calls `on_done(id, task)`.
fn spawn_task<'py>(
    actor: &Actor,
    py: Python<'py>,
    awaitable: &Bound<'py, PyAny>,
    id: u64,
    on_done: fn(&Actor, Python<'_>, u64, &Bound<'_, PyAny>),
) -> PyResult<Py<PyAny>> {
    let lp = actor.loop_state().event_loop.clone_ref(py);
    let helpers = actor.loop_state().helpers.clone_ref(py);
    let task = helpers.bind(py).call_method1("start_task", (lp, awaitable, id))?;
    let callback = PyCFunction::new_closure(py, None, None, move |args: &Bound<'_, PyTuple>, _kw: Option<&Bound<'_, PyDict>>| {
        let py = args.py();
        if let (Some(actor), Ok(task)) = (super::context::current_actor(), args.get_item(0)) {
            on_done(&actor, py, id, &task);
        }
    })?;
    task.call_method1("add_done_callback", (callback,))?;
    Ok(task.unbind())
}

fn job_done(actor: &Actor, py: Python<'_>, id: u64, task: &Bound<'_, PyAny>) {
    let Some(job) = actor.loop_state_mut().jobs.remove(&id) else { return };
    let outcome = task_outcome(task);
    drop(job.task);
    reply(py, job.req, outcome);
}

fn task_outcome<'py>(task: &Bound<'py, PyAny>) -> Result<Bound<'py, PyAny>, Failure> {
    if task.call_method0("cancelled").and_then(|c| c.is_truthy()).unwrap_or(false) {
        return Err(Failure::Python(pyo3::exceptions::asyncio::CancelledError::new_err("the task was cancelled")));
    }
    task.call_method0("result").map_err(Failure::Python)
}

/// Answer `{ok, V}` or `{error, R}` (see `Request::reply`).
fn reply(py: Python<'_>, req: Request, outcome: Result<Bound<'_, PyAny>, Failure>) {
    if req.reply.is_none() {
        return;
    }
    let result = req.with(|env, _| {
        let result = match outcome.and_then(|v| py_to_term(env, &v).map_err(Failure::from)) {
            Ok(term) => ok_tuple(env, term),
            Err(failure) => failure_to_term(py, env, failure),
        };
        req.hold(result)
    });
    req.reply(Answer::Result(result));
}

/// The caller gave up on request `id`: cancel its task or close its stream.
pub fn cancel(actor: &Actor, py: Python<'_>, id: u64) {
    let task = actor.loop_state().jobs.get(&id).map(|j| j.task.clone_ref(py));
    if let Some(task) = task {
        let _ = task.bind(py).call_method0("cancel");
        return;
    }
    let source = match actor.loop_state().streams.get(&id) {
        Some(s) => match &s.source {
            Source::Sync(it) => Source::Sync(it.clone_ref(py)),
            Source::Async(task) => Source::Async(task.clone_ref(py)),
        },
        None => return,
    };
    match source {
        Source::Async(task) => {
            // The pump's `finally` closes the generator; its done-callback ends the stream.
            let _ = task.bind(py).call_method0("cancel");
        }
        Source::Sync(iterator) => {
            if let Ok(close) = iterator.bind(py).getattr("close") {
                let _ = close.call0();
            }
            finish_stream(actor, py, id, Ending::Cancelled);
        }
    }
}

fn start_stream(actor: &Actor, py: Python<'_>, req: Request, value: Py<PyAny>, owner: LocalPid, controller: LocalPid, credit: usize) {
    let id = req.id();
    let helpers = actor.loop_state().helpers.clone_ref(py);
    let value = value.bind(py);
    let source = (|| -> PyResult<Source> {
        if helpers.bind(py).call_method1("is_async_iterable", (value,))?.is_truthy()? {
            let emit = PyCFunction::new_closure(py, None, None, move |args: &Bound<'_, PyTuple>, _kw: Option<&Bound<'_, PyDict>>| -> PyResult<bool> {
                let actor = super::context::current_actor().ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("no context"))?;
                emit_item(&actor, id, &args.get_item(0)?)
            })?;
            let wait = PyCFunction::new_closure(py, None, None, move |args: &Bound<'_, PyTuple>, _kw: Option<&Bound<'_, PyDict>>| -> PyResult<Py<PyAny>> {
                let actor = super::context::current_actor().ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("no context"))?;
                credit_future(&actor, args.py(), id)
            })?;
            let pump = helpers.bind(py).call_method1("pump", (value, emit, wait))?;
            Ok(Source::Async(spawn_task(actor, py, &pump, id, stream_task_done)?))
        } else {
            Ok(Source::Sync(value.try_iter()?.into_any().unbind()))
        }
    })();
    match source {
        Ok(source) => {
            let is_sync = matches!(source, Source::Sync(_));
            let out = Some(MsgEnv::new());
            let watch = Watch::caller_of(actor, &req);
            actor.loop_state_mut().streams.insert(
                id,
                Stream { req, out, owner, controller, credit, source, step_queued: false, credit_future: None, _watch: watch },
            );
            if is_sync {
                queue_step(actor, py, id);
            }
        }
        Err(e) => req.end_stream(&owner, &controller, |env| failure_to_term(py, env, Failure::Python(e))),
    }
}

/// Schedule the next production step of sync stream `id` on the loop.
fn queue_step(actor: &Actor, py: Python<'_>, id: u64) {
    let lp = actor.loop_state().event_loop.clone_ref(py);
    let step = PyCFunction::new_closure(py, None, None, move |args: &Bound<'_, PyTuple>, _kw: Option<&Bound<'_, PyDict>>| {
        if let Some(actor) = super::context::current_actor() {
            sync_step(&actor, args.py(), id);
        }
    });
    if let Ok(step) = step {
        if lp.bind(py).call_method1("call_soon", (step,)).is_ok() {
            if let Some(s) = actor.loop_state_mut().streams.get_mut(&id) {
                s.step_queued = true;
            }
        }
    }
}

fn sync_step(actor: &Actor, py: Python<'_>, id: u64) {
    let iterator = match actor.loop_state_mut().streams.get_mut(&id) {
        Some(s) => {
            s.step_queued = false;
            match &s.source {
                Source::Sync(it) => it.clone_ref(py),
                Source::Async(_) => return,
            }
        }
        None => return,
    };
    // The generator's code is this stream's: a cancel interrupts it (see `interrupt`).
    let outer = actor.shared.running_req.swap(id, Ordering::AcqRel);
    let finished = sync_batch(actor, py, id, iterator.bind(py));
    actor.shared.running_req.store(outer, Ordering::Release);
    match finished {
        Some(ending) => finish_stream(actor, py, id, ending),
        None if actor.loop_state().streams.get(&id).is_some_and(|s| s.credit > 0) => queue_step(actor, py, id),
        None => {} // out of credit: the controller's grant resumes us
    }
}

/// Send up to `SYNC_BATCH` items; `Some` when the stream ends.
fn sync_batch(actor: &Actor, py: Python<'_>, id: u64, iterator: &Bound<'_, PyAny>) -> Option<Ending> {
    for _ in 0..SYNC_BATCH {
        // SAFETY: `iterator` is a live iterator and the GIL is held; `PyIter_Next` answers
        // a new reference or NULL, which `from_owned_ptr_or_opt` takes over.
        let next = unsafe { Bound::from_owned_ptr_or_opt(py, pyo3::ffi::PyIter_Next(iterator.as_ptr())) };
        match next {
            Some(item) => match emit_item(actor, id, &item) {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => return Some(Ending::Error(Failure::Python(e))),
            },
            None => {
                return Some(match PyErr::take(py) {
                    Some(e) => Ending::Error(Failure::Python(e)),
                    None => Ending::Done,
                });
            }
        }
    }
    None
}

/// Send one item to the owner. Answers whether credit is left; when it runs out, the
/// controller is asked for more.
fn emit_item(actor: &Actor, id: u64, item: &Bound<'_, PyAny>) -> PyResult<bool> {
    // No borrow of the loop state is held while converting: `__str__` of an item may run
    // Python code that reaches this context again.
    let (tag, owner, mut out) = {
        let mut state = actor.loop_state_mut();
        let Some(s) = state.streams.get_mut(&id) else {
            return Err(pyo3::exceptions::asyncio::CancelledError::new_err("stream closed"));
        };
        let out = s.out.take().unwrap_or_else(MsgEnv::new);
        (s.req.copy_tag_into(&out), s.owner, out)
    };
    let msg = out.with(|env| -> PyResult<Held> {
        let value = py_to_term(env, item).map_err(crate::actors::callback::conv_to_py)?;
        Ok(out.hold((py_stream(), out.term(env, tag), (data(), value)).encode(env)))
    });
    let sent = match msg {
        Ok(msg) => {
            out.send_held(&owner, msg);
            Ok(())
        }
        Err(e) => {
            out.clear();
            Err(e)
        }
    };
    let mut state = actor.loop_state_mut();
    let Some(s) = state.streams.get_mut(&id) else { return sent.map(|_| false) };
    let result = sent.map(|_| {
        s.credit = s.credit.saturating_sub(1);
        if s.credit == 0 {
            let tag = s.req.copy_tag_into(&out);
            let note = out.with(|env| out.hold((py_stream_credit(), out.term(env, tag)).encode(env)));
            out.send_held(&s.controller, note);
        }
        s.credit > 0
    });
    s.out = Some(out);
    result
}

fn credit_future(actor: &Actor, py: Python<'_>, id: u64) -> PyResult<Py<PyAny>> {
    let lp = actor.loop_state().event_loop.clone_ref(py);
    let future = lp.bind(py).call_method0("create_future")?;
    let mut state = actor.loop_state_mut();
    match state.streams.get_mut(&id) {
        Some(s) if s.credit > 0 => {
            future.call_method1("set_result", (py.None(),))?;
        }
        Some(s) => s.credit_future = Some(future.clone().unbind()),
        None => future.call_method0("cancel").map(|_| ())?,
    }
    Ok(future.unbind())
}

/// The controller granted `n` more items for stream `id`.
pub fn grant_credit(actor: &Actor, py: Python<'_>, id: u64, n: usize) {
    let (resume_sync, future) = {
        let mut state = actor.loop_state_mut();
        let Some(s) = state.streams.get_mut(&id) else { return };
        let was_empty = s.credit == 0;
        s.credit += n;
        let resume_sync = was_empty && matches!(s.source, Source::Sync(_)) && !s.step_queued;
        (resume_sync, s.credit_future.take())
    };
    if let Some(future) = future {
        let _ = future.bind(py).call_method1("set_result", (py.None(),));
    }
    if resume_sync {
        queue_step(actor, py, id);
    }
}

fn stream_task_done(actor: &Actor, py: Python<'_>, id: u64, task: &Bound<'_, PyAny>) {
    let cancelled = task.call_method0("cancelled").and_then(|c| c.is_truthy()).unwrap_or(false);
    let ending = if cancelled {
        Ending::Cancelled
    } else {
        match task.call_method0("result") {
            Ok(_) => Ending::Done,
            Err(e) => Ending::Error(Failure::Python(e)),
        }
    };
    finish_stream(actor, py, id, ending);
}

enum Ending {
    Done,
    Cancelled,
    Error(Failure),
}

fn finish_stream(actor: &Actor, py: Python<'_>, id: u64, ending: Ending) {
    let Some(s) = actor.loop_state_mut().streams.remove(&id) else { return };
    if matches!(ending, Ending::Error(_)) && s.req.reply.as_ref().is_some_and(|st| st.is_cancelled()) {
        // Ended by the interruption of its cancel: the owner is told it was cancelled.
        super::context::clear_pending_interrupt(py, &actor.shared);
        return finish_stream_as(py, s, Ending::Cancelled);
    }
    finish_stream_as(py, s, ending)
}

fn finish_stream_as(py: Python<'_>, s: Stream, ending: Ending) {
    s.req.end_stream(&s.owner, &s.controller, |env| match ending {
        Ending::Done => done().encode(env),
        Ending::Cancelled => (atoms::error(), atoms::cancelled()).encode(env),
        Ending::Error(failure) => failure_to_term(py, env, failure),
    });
}

/// A stream cancelled before it started still ends: `{py_stream, Ref, {error, cancelled}}`
/// to its owner and `{py_stream_finished, Ref}` to its controller. Other cancelled
/// requests have nobody waiting.
fn end_cancelled_stream(req: Request) {
    if let Some((owner, controller)) = req.with(|_, job| match job {
        RequestJob::StreamStart { owner, controller, .. } => Some((owner, controller)),
        _ => None,
    }) {
        req.end_stream(&owner, &controller, |env| (atoms::error(), atoms::cancelled()).encode(env));
    }
}

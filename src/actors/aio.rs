//! Coroutines and streams on a context's own asyncio loop.
//!
//! `async_call`, `async_gather` and collecting an async generator become tasks on the loop;
//! their done-callbacks send the reply. `stream_start` pushes each item of a generator (sync
//! or async) to its owner as `{py_stream, Ref, {data, V}}`, spending credit granted by a
//! controller process that watches how many messages the owner has not read yet, so a slow
//! owner pauses the producer instead of filling memory.

use super::context::Actor;
use crate::mailbox::request::{Answer, CallSpec, Job as RequestJob};
use crate::mailbox::Request;
use crate::atoms;
use crate::execute::{failure_to_term, ok_tuple, Failure};
use crate::py_errors::Site;
use crate::msg_env::{Held, MsgEnv};
use crate::mailbox::handles::WorkWatch;
use rustler::{Monitor, ResourceArc};
use std::sync::atomic::Ordering;
use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyDict, PyList, PyModule, PyTuple};
use rustler::types::tuple::get_tuple;
use rustler::{Encoder, LocalPid, Term};
use std::cell::RefCell;
use std::collections::HashMap;

/// Items a synchronous generator produces per turn of the loop.
const SYNC_BATCH: usize = 1024;

rustler::atoms! { py_stream, data, done, py_stream_credit }

/// The requests running as tasks or streams on a context's loop, by request id.
///
/// Python code may re-enter the actor at any point where Python runs (a `__del__` run by
/// the cycle collector, a generator, a done-callback), and the re-entered code uses this
/// table again. So every method borrows inside and hands no guard out, no Python runs
/// while a borrow is held, and whatever leaves the table (a request, a task, a future) is
/// handed back to be dropped or called after the borrow ended.
#[derive(Default)]
pub struct LoopWork {
    jobs: RefCell<HashMap<u64, Job>>,
    streams: RefCell<HashMap<u64, Stream>>,
}

/// What `LoopWork::park_credit_wait` did with a producer's wait for credit.
enum CreditWait {
    /// Credit is there: the future can be resolved at once.
    Ready,
    /// Kept until credit comes; the previous wait, if any, is handed back.
    Parked(Option<Py<PyAny>>),
    /// The stream is gone: the future should be cancelled.
    Gone,
}

impl LoopWork {
    /// Whether a task or stream of a request is registered.
    pub fn is_empty(&self) -> bool {
        self.jobs.borrow().is_empty() && self.streams.borrow().is_empty()
    }

    fn insert_job(&self, id: u64, job: Job) -> Option<Job> {
        self.jobs.borrow_mut().insert(id, job)
    }

    fn take_job(&self, id: u64) -> Option<Job> {
        self.jobs.borrow_mut().remove(&id)
    }

    fn job_task(&self, py: Python<'_>, id: u64) -> Option<Py<PyAny>> {
        self.jobs.borrow().get(&id).map(|j| j.task.clone_ref(py))
    }

    fn insert_stream(&self, id: u64, stream: Stream) -> Option<Stream> {
        self.streams.borrow_mut().insert(id, stream)
    }

    fn take_stream(&self, id: u64) -> Option<Stream> {
        self.streams.borrow_mut().remove(&id)
    }

    fn stream_source(&self, py: Python<'_>, id: u64) -> Option<Source> {
        self.streams.borrow().get(&id).map(|s| match &s.source {
            Source::Sync(it) => Source::Sync(it.clone_ref(py)),
            Source::Async(task) => Source::Async(task.clone_ref(py)),
        })
    }

    /// A sync stream's production step ran: its iterator, unless the stream ended.
    fn begin_sync_step(&self, py: Python<'_>, id: u64) -> Option<Py<PyAny>> {
        let mut streams = self.streams.borrow_mut();
        let s = streams.get_mut(&id)?;
        s.step_queued = false;
        match &s.source {
            Source::Sync(it) => Some(it.clone_ref(py)),
            Source::Async(_) => None,
        }
    }

    fn mark_step_queued(&self, id: u64) {
        if let Some(s) = self.streams.borrow_mut().get_mut(&id) {
            s.step_queued = true;
        }
    }

    fn has_credit(&self, id: u64) -> bool {
        self.streams.borrow().get(&id).is_some_and(|s| s.credit > 0)
    }

    /// What sending an item of stream `id` needs: its tag, owner and message environment
    /// (lent out until `item_sent`). `None` when the stream is closed.
    fn lend_item_env(&self, id: u64) -> Option<(Held, LocalPid, MsgEnv)> {
        let mut streams = self.streams.borrow_mut();
        let s = streams.get_mut(&id)?;
        let out = s.out.take().unwrap_or_else(MsgEnv::new);
        Some((s.req.copy_tag_into(&out), s.owner, out))
    }

    /// An item of stream `id` went out (`sent`): spend one credit, telling the controller
    /// when it runs out, and take the environment back. Answers whether credit is left.
    fn item_sent(&self, id: u64, mut out: MsgEnv, sent: bool) -> bool {
        let mut streams = self.streams.borrow_mut();
        let Some(s) = streams.get_mut(&id) else { return false };
        if sent {
            if let Some(trace) = s.req.trace() {
                trace.item_sent();
            }
            s.req.count_item();
            s.credit = s.credit.saturating_sub(1);
            if s.credit == 0 {
                let tag = s.req.copy_tag_into(&out);
                let note = out.with(|env| out.hold((py_stream_credit(), out.term(env, tag)).encode(env)));
                out.send_held(&s.controller, note);
            }
        }
        s.out = Some(out);
        s.credit > 0
    }

    fn park_credit_wait(&self, id: u64, future: &Bound<'_, PyAny>) -> CreditWait {
        let mut streams = self.streams.borrow_mut();
        match streams.get_mut(&id) {
            Some(s) if s.credit > 0 => CreditWait::Ready,
            Some(s) => CreditWait::Parked(s.credit_future.replace(future.clone().unbind())),
            None => CreditWait::Gone,
        }
    }

    /// `n` more items for stream `id`: whether its sync producer must be resumed, and the
    /// producer's wait for credit to resolve.
    fn grant(&self, id: u64, n: usize) -> Option<(bool, Option<Py<PyAny>>)> {
        let mut streams = self.streams.borrow_mut();
        let s = streams.get_mut(&id)?;
        let was_empty = s.credit == 0;
        s.credit += n;
        let resume_sync = was_empty && matches!(s.source, Source::Sync(_)) && !s.step_queued;
        Some((resume_sync, s.credit_future.take()))
    }

    /// The reply state of request `id`, if it runs as a task or stream here.
    fn request_state(&self, id: u64) -> Option<std::sync::Arc<crate::mailbox::ReqState>> {
        if let Some(job) = self.jobs.borrow().get(&id) {
            return job.req.reply.clone();
        }
        self.streams.borrow().get(&id).and_then(|s| s.req.reply.clone())
    }

    /// Every request still waiting for a task or stream (the context is going away). The
    /// tasks and iterators they held are dropped here, after the borrows.
    pub fn abandon_all(&self) -> Vec<Request> {
        let jobs: Vec<Job> = self.jobs.borrow_mut().drain().map(|(_, j)| j).collect();
        let streams: Vec<Stream> = self.streams.borrow_mut().drain().map(|(_, s)| s).collect();
        jobs.into_iter().map(|j| j.req).chain(streams.into_iter().map(|s| s.req)).collect()
    }
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
                    actor.mailbox.control(crate::mailbox::Msg::Cancelled(state.id));
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

/// Start an async request: a task, a stream, or (for values that need no loop) an
/// immediate reply.
pub fn start(actor: &Actor, py: Python<'_>, req: Request) {
    if req.is_cancelled() {
        return end_cancelled_stream(req);
    }
    let env_id = req.namespace_id();
    // Tasks and loop callbacks created below copy the Python context: they run in the
    // request's span. A trace is shared, so the span outlives a reply made in here.
    let _traced = crate::trace::enter(py, req.trace(), actor.shared.id);
    // The Python run here (the function, listing a sync iterable's first items) is this
    // request's: a timeout interrupts it.
    let outer = actor.shared.running_req.swap(req.id(), Ordering::AcqRel);
    let started = req.with(|env, job| -> Result<Started, (Failure, Option<(LocalPid, LocalPid)>)> {
        let ex = actor.executor();
        let helpers = actor.loop_driver().helpers(py);
        match job {
            RequestJob::AsyncCall { call } => Ok(awaitable_or_value(ex.call_value(py, env_id, call).map_err(|f| (f, None))?)),
            RequestJob::AsyncGather { calls } => {
                let calls = crate::convert::proper_list(calls).ok_or((Failure::BadArg("calls"), None))?;
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
            match actor.spawn_task(py, awaitable.bind(py), id, Actor::job_done) {
                Ok(task) => {
                    let watch = Watch::caller_of(actor, &req);
                    drop(actor.loop_work().insert_job(id, Job { req, task, _watch: watch }));
                }
                Err(e) => reply(py, req, Err(e.into())),
            }
        }
        Ok(Started::Stream { value, owner, controller, credit }) => actor.start_stream(py, req, value, owner, controller, credit),
        Err((failure, Some((owner, controller)))) => {
            let site = site_of(&req);
            req.end_stream(&owner, &controller, |env| failure_to_term(py, env, failure, &site));
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

impl Actor {
    /// Wrap `awaitable` in a task on the loop whose completion calls `on_done(id, task)`.
    fn spawn_task<'py>(
        &self,
        py: Python<'py>,
        awaitable: &Bound<'py, PyAny>,
        id: u64,
        on_done: fn(&Actor, Python<'_>, u64, &Bound<'_, PyAny>),
    ) -> PyResult<Py<PyAny>> {
        let task = self.loop_driver().start_task(py, awaitable, id)?;
        let callback = PyCFunction::new_closure(py, None, None, move |args: &Bound<'_, PyTuple>, _kw: Option<&Bound<'_, PyDict>>| {
            let py = args.py();
            if let (Some(actor), Ok(task)) = (super::context::current_actor(), args.get_item(0)) {
                on_done(&actor, py, id, &task);
            }
        })?;
        task.call_method1("add_done_callback", (callback,))?;
        Ok(task.unbind())
    }

    fn job_done(&self, py: Python<'_>, id: u64, task: &Bound<'_, PyAny>) {
        let Some(job) = self.loop_work().take_job(id) else { return };
        let outcome = task_outcome(task);
        drop(job.task);
        reply(py, job.req, outcome);
    }

    /// The caller gave up on request `id`: cancel its task or close its stream.
    pub fn cancel_async(&self, py: Python<'_>, id: u64) {
        if let Some(task) = self.loop_work().job_task(py, id) {
            let _ = task.bind(py).call_method0("cancel");
            return;
        }
        match self.loop_work().stream_source(py, id) {
            Some(Source::Async(task)) => {
                // The pump's `finally` closes the generator; its done-callback ends the stream.
                let _ = task.bind(py).call_method0("cancel");
            }
            Some(Source::Sync(iterator)) => {
                if let Ok(close) = iterator.bind(py).getattr("close") {
                    let _ = close.call0();
                }
                self.finish_stream(py, id, Ending::Cancelled);
            }
            None => {}
        }
    }

    fn start_stream(&self, py: Python<'_>, req: Request, value: Py<PyAny>, owner: LocalPid, controller: LocalPid, credit: usize) {
        let id = req.id();
        let helpers = self.loop_driver().helpers(py);
        let value = value.bind(py);
        let source = (|| -> PyResult<Source> {
            if helpers.call_method1("is_async_iterable", (value,))?.is_truthy()? {
                let emit = PyCFunction::new_closure(py, None, None, move |args: &Bound<'_, PyTuple>, _kw: Option<&Bound<'_, PyDict>>| -> PyResult<bool> {
                    let actor = super::context::current_actor().ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("no context"))?;
                    actor.emit_item(id, &args.get_item(0)?)
                })?;
                let wait = PyCFunction::new_closure(py, None, None, move |args: &Bound<'_, PyTuple>, _kw: Option<&Bound<'_, PyDict>>| -> PyResult<Py<PyAny>> {
                    let actor = super::context::current_actor().ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("no context"))?;
                    actor.credit_future(args.py(), id)
                })?;
                let pump = helpers.call_method1("pump", (value, emit, wait))?;
                Ok(Source::Async(self.spawn_task(py, &pump, id, Actor::stream_task_done)?))
            } else {
                Ok(Source::Sync(value.try_iter()?.into_any().unbind()))
            }
        })();
        match source {
            Ok(source) => {
                let is_sync = matches!(source, Source::Sync(_));
                let out = Some(MsgEnv::new());
                let watch = Watch::caller_of(self, &req);
                let stream = Stream { req, out, owner, controller, credit, source, step_queued: false, credit_future: None, _watch: watch };
                drop(self.loop_work().insert_stream(id, stream));
                if is_sync {
                    self.queue_step(py, id);
                }
            }
            Err(e) => {
                let site = site_of(&req);
                req.end_stream(&owner, &controller, |env| failure_to_term(py, env, Failure::Python(e), &site))
            }
        }
    }

    /// Schedule the next production step of sync stream `id` on the loop.
    fn queue_step(&self, py: Python<'_>, id: u64) {
        let step = PyCFunction::new_closure(py, None, None, move |args: &Bound<'_, PyTuple>, _kw: Option<&Bound<'_, PyDict>>| {
            if let Some(actor) = super::context::current_actor() {
                actor.sync_step(args.py(), id);
            }
        });
        if let Ok(step) = step {
            if self.loop_driver().call_soon(py, step.into_any()).is_ok() {
                self.loop_work().mark_step_queued(id);
            }
        }
    }

    fn sync_step(&self, py: Python<'_>, id: u64) {
        let Some(iterator) = self.loop_work().begin_sync_step(py, id) else { return };
        // The generator's code is this stream's: a cancel interrupts it (see `interrupt`).
        let outer = self.shared.running_req.swap(id, Ordering::AcqRel);
        let finished = self.sync_batch(py, id, iterator.bind(py));
        self.shared.running_req.store(outer, Ordering::Release);
        match finished {
            Some(ending) => self.finish_stream(py, id, ending),
            None if self.loop_work().has_credit(id) => self.queue_step(py, id),
            None => {} // out of credit: the controller's grant resumes us
        }
    }

    /// Send up to `SYNC_BATCH` items; `Some` when the stream ends.
    fn sync_batch(&self, py: Python<'_>, id: u64, iterator: &Bound<'_, PyAny>) -> Option<Ending> {
        for _ in 0..SYNC_BATCH {
            // SAFETY: `iterator` is a live iterator and the GIL is held; `PyIter_Next` answers
            // a new reference or NULL, which `from_owned_ptr_or_opt` takes over.
            let next = unsafe { Bound::from_owned_ptr_or_opt(py, pyo3::ffi::PyIter_Next(iterator.as_ptr())) };
            match next {
                Some(item) => match self.emit_item(id, &item) {
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
    fn emit_item(&self, id: u64, item: &Bound<'_, PyAny>) -> PyResult<bool> {
        // Converting may run Python (`__str__` of an item) that reaches this context again.
        let Some((tag, owner, mut out)) = self.loop_work().lend_item_env(id) else {
            return Err(pyo3::exceptions::asyncio::CancelledError::new_err("stream closed"));
        };
        let msg = out.with(|env| -> PyResult<Held> {
            let value = crate::execute::result_to_term(env, item).map_err(crate::convert::conv_to_py)?;
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
        let credit_left = self.loop_work().item_sent(id, out, sent.is_ok());
        sent.map(|_| credit_left)
    }

    fn credit_future(&self, py: Python<'_>, id: u64) -> PyResult<Py<PyAny>> {
        let future = self.loop_driver().create_future(py)?;
        match self.loop_work().park_credit_wait(id, &future) {
            CreditWait::Ready => drop(future.call_method1("set_result", (py.None(),))?),
            CreditWait::Parked(previous) => drop(previous),
            CreditWait::Gone => drop(future.call_method0("cancel")?),
        }
        Ok(future.unbind())
    }

    /// The controller granted `n` more items for stream `id`.
    pub fn grant_stream_credit(&self, py: Python<'_>, id: u64, n: usize) {
        let Some((resume_sync, future)) = self.loop_work().grant(id, n) else { return };
        if let Some(future) = future {
            let _ = future.bind(py).call_method1("set_result", (py.None(),));
        }
        if resume_sync {
            self.queue_step(py, id);
        }
    }

    fn stream_task_done(&self, py: Python<'_>, id: u64, task: &Bound<'_, PyAny>) {
        let cancelled = task.call_method0("cancelled").and_then(|c| c.is_truthy()).unwrap_or(false);
        let ending = if cancelled {
            Ending::Cancelled
        } else {
            match task.call_method0("result") {
                Ok(_) => Ending::Done,
                Err(e) => Ending::Error(Failure::Python(e)),
            }
        };
        self.finish_stream(py, id, ending);
    }

    fn finish_stream(&self, py: Python<'_>, id: u64, ending: Ending) {
        let Some(s) = self.loop_work().take_stream(id) else { return };
        if matches!(ending, Ending::Error(_)) && s.req.is_cancelled() {
            // Ended by the interruption of its cancel: the owner is told it was cancelled.
            super::context::clear_pending_interrupt(py, &self.shared);
            return finish_stream_as(py, s, Ending::Cancelled);
        }
        finish_stream_as(py, s, ending)
    }

    /// The reply state of the request whose task runs now on the loop, if it is a task
    /// or stream of this context.
    pub fn current_task_state(&self, py: Python<'_>) -> Option<std::sync::Arc<crate::mailbox::ReqState>> {
        let id = self.loop_driver().current_task_request(py)?;
        self.loop_work().request_state(id)
    }
}

fn task_outcome<'py>(task: &Bound<'py, PyAny>) -> Result<Bound<'py, PyAny>, Failure> {
    if task.call_method0("cancelled").and_then(|c| c.is_truthy()).unwrap_or(false) {
        return Err(Failure::Python(pyo3::exceptions::asyncio::CancelledError::new_err("the task was cancelled")));
    }
    task.call_method0("result").map_err(Failure::Python)
}

/// Where a failure of `req` happened, for its error term and log event.
fn site_of(req: &Request) -> Site {
    req.with(|_, job| Site::of(req, &job))
}

/// Answer `{ok, V}` or `{error, R}` (see `Request::reply`).
fn reply(py: Python<'_>, req: Request, outcome: Result<Bound<'_, PyAny>, Failure>) {
    if req.reply.is_none() {
        return;
    }
    let _timed = crate::trace::converting(req.trace());
    let result = req.with(|env, job| {
        let result = match outcome.and_then(|v| crate::execute::result_to_term(env, &v).map_err(Failure::from)) {
            Ok(term) => ok_tuple(env, term),
            Err(failure) => failure_to_term(py, env, failure, &Site::of(&req, &job)),
        };
        req.hold(result)
    });
    req.reply(Answer::Result(result));
}

enum Ending {
    Done,
    Cancelled,
    Error(Failure),
}

fn finish_stream_as(py: Python<'_>, s: Stream, ending: Ending) {
    let site = matches!(ending, Ending::Error(_)).then(|| site_of(&s.req));
    s.req.end_stream(&s.owner, &s.controller, |env| match (ending, site) {
        (Ending::Done, _) => done().encode(env),
        (Ending::Cancelled, _) => (atoms::error(), atoms::cancelled()).encode(env),
        (Ending::Error(failure), Some(site)) => failure_to_term(py, env, failure, &site),
        (Ending::Error(_), None) => unreachable!("an error ending has its site"),
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

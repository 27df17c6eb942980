//! Coroutines and streams on a context's own asyncio loop.
//!
//! `async_call`, `async_gather` and collecting an async generator become tasks on the loop;
//! their done-callbacks send the reply. `stream_start` pushes each item of a generator (sync
//! or async) to its owner as `{py_stream, Ref, {data, V}}`, spending credit granted by a
//! controller process that watches how many messages the owner has not read yet, so a slow
//! owner pauses the producer instead of filling memory.

use super::context::Actor;
use super::Request;
use crate::atoms;
use crate::convert::py_to_term;
use crate::execute::{failure_to_term, ok_tuple, Failure};
use crate::msg_env::{MsgEnv, RawTerm};
use crate::resources::WorkWatch;
use rustler::{Monitor, ResourceArc};
use std::sync::atomic::Ordering;
use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyDict, PyList, PyModule, PyTuple};
use rustler::types::tuple::get_tuple;
use rustler::{Atom, Encoder, Env, LocalPid, Term};
use std::cell::RefCell;
use std::collections::HashMap;

/// Items a synchronous generator produces per turn of the loop.
const SYNC_BATCH: usize = 1024;

rustler::atoms! {
    async_call, async_gather, stream, stream_eval, stream_start,
    py_stream, data, done, py_stream_credit, py_stream_finished,
}

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
    fn lend_item_env(&self, id: u64) -> Option<(RawTerm, LocalPid, MsgEnv)> {
        let mut streams = self.streams.borrow_mut();
        let s = streams.get_mut(&id)?;
        Some((s.tag, s.owner, s.out.take().unwrap_or_else(MsgEnv::new)))
    }

    /// An item of stream `id` went out (`sent`): spend one credit, telling the controller
    /// when it runs out, and take the environment back. Answers whether credit is left.
    fn item_sent(&self, id: u64, mut out: MsgEnv, sent: bool) -> bool {
        let mut streams = self.streams.borrow_mut();
        let Some(s) = streams.get_mut(&id) else { return false };
        if sent {
            s.credit = s.credit.saturating_sub(1);
            if s.credit == 0 {
                let tag = s.tag;
                // SAFETY: `copy_raw` gives a term of `out`'s environment, alive for the closure.
                let note = out.with(|env| (py_stream_credit(), unsafe { Term::new(env, out.copy_raw(tag)) }).encode(env).as_c_arg());
                out.send_and_clear(&s.controller, note);
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
    fn request_state(&self, id: u64) -> Option<std::sync::Arc<super::ReqState>> {
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
    /// The stream's `Ref` (a term of `req.env`), and a reused environment for items.
    tag: RawTerm,
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

/// Whether a request body is one this module runs.
pub fn is_async_request(env: Env, body: RawTerm) -> bool {
    let body = unsafe { Term::new(env, body) };
    let Some(kind) = get_tuple(body).ok().and_then(|f| f.first().and_then(|k| k.decode::<Atom>().ok())) else {
        return false;
    };
    [async_call(), async_gather(), stream(), stream_eval(), stream_start()].contains(&kind)
}

/// Start an async request: a task, a stream, or (for values that need no loop) an
/// immediate reply.
pub fn start(actor: &Actor, py: Python<'_>, mut req: Request) {
    if req.reply.as_ref().is_some_and(|s| s.is_cancelled()) {
        return end_cancelled_stream(&mut req);
    }
    let env_id = req.env_id();
    let body = req.body;
    // The Python run here (the function, listing a sync iterable's first items) is this
    // request's: a timeout interrupts it.
    let outer = actor.shared.running_req.swap(req_id(&req), Ordering::AcqRel);
    let started = req.env.with(|env| -> Result<Started, (Failure, Option<(LocalPid, LocalPid)>)> {
        let fields = get_tuple(unsafe { Term::new(env, body) }).map_err(|_| (Failure::BadArg("request"), None))?;
        let kind: Atom = fields[0].decode().map_err(|_| (Failure::BadArg("request"), None))?;
        let ex = actor.executor();
        let helpers = actor.loop_driver().helpers(py);
        let call = |at: usize| ex.call_value(py, env_id, fields[at], fields[at + 1], fields[at + 2], fields[at + 3]);
        match (kind, fields.len()) {
            (k, 6) if k == async_call() => Ok(awaitable_or_value(call(2).map_err(|f| (f, None))?)),
            (k, 3) if k == async_gather() => {
                let calls: Vec<Term> = fields[2].decode().map_err(|_| (Failure::BadArg("calls"), None))?;
                let mut values = Vec::with_capacity(calls.len());
                for c in calls {
                    let parts = get_tuple(c).map_err(|_| (Failure::BadArg("calls"), None))?;
                    let empty = Term::map_new(env);
                    let (m, f, a, kw) = match parts.as_slice() {
                        [m, f, a] => (*m, *f, *a, empty),
                        [m, f, a, kw] => (*m, *f, *a, *kw),
                        _ => return Err((Failure::BadArg("calls"), None)),
                    };
                    values.push(ex.call_value(py, env_id, m, f, a, kw).map_err(|f| (f, None))?);
                }
                let list = PyList::new(py, values).map_err(|e| (e.into(), None))?;
                Ok(Started::Awaitable(helpers.call_method1("gather", (list,)).map_err(|e| (e.into(), None))?.unbind()))
            }
            (k, 6) if k == stream() => collect_or_list(helpers, call(2).map_err(|f| (f, None))?).map_err(|e| (e, None)),
            (k, 4) if k == stream_eval() => {
                let value = ex.eval_value(py, env_id, fields[2], fields[3]).map_err(|f| (f, None))?;
                collect_or_list(helpers, value).map_err(|e| (e, None))
            }
            (k, 9) if k == stream_start() => {
                let owner: LocalPid = fields[6].decode().map_err(|_| (Failure::BadArg("owner"), None))?;
                let controller: LocalPid = fields[7].decode().map_err(|_| (Failure::BadArg("owner"), None))?;
                let credit: usize = fields[8].decode().map_err(|_| (Failure::BadArg("window"), None))?;
                let value = call(2).map_err(|f| (f, Some((owner, controller))))?;
                Ok(Started::Stream { value: value.unbind(), owner, controller, credit })
            }
            _ => Err((Failure::BadArg("request"), None)),
        }
    });
    actor.shared.running_req.store(outer, Ordering::Release);
    if req.reply.as_ref().is_some_and(|s| s.is_cancelled()) {
        super::context::clear_pending_interrupt(py, &actor.shared);
    }
    match started {
        Ok(Started::Value(value)) => reply(py, &mut req, Ok(value.bind(py).clone())),
        Ok(Started::Awaitable(awaitable)) => {
            let id = req_id(&req);
            match actor.spawn_task(py, awaitable.bind(py), id, Actor::job_done) {
                Ok(task) => {
                    let watch = Watch::caller_of(actor, &req);
                    drop(actor.loop_work().insert_job(id, Job { req, task, _watch: watch }));
                }
                Err(e) => reply(py, &mut req, Err(e.into())),
            }
        }
        Ok(Started::Stream { value, owner, controller, credit }) => actor.start_stream(py, req, value, owner, controller, credit),
        Err((failure, Some((owner, controller)))) => {
            let msg = req.env.with(|env| {
                let reason = failure_to_term(py, env, failure);
                stream_event(env, req.body, reason)
            });
            send_stream_end(&mut req, &owner, &controller, msg);
        }
        Err((failure, None)) => reply(py, &mut req, Err(failure)),
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

fn req_id(req: &Request) -> u64 {
    req.reply.as_ref().map_or(0, |s| s.id)
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
        let Some(mut job) = self.loop_work().take_job(id) else { return };
        let outcome = task_outcome(task);
        drop(job.task);
        reply(py, &mut job.req, outcome);
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

    fn start_stream(&self, py: Python<'_>, mut req: Request, value: Py<PyAny>, owner: LocalPid, controller: LocalPid, credit: usize) {
        let id = req_id(&req);
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
                let body = req.body;
                // SAFETY: `body` is a term of `req.env`, alive until the environment is cleared.
                let Some(tag) = req.env.with(|env| get_tuple(unsafe { Term::new(env, body) }).ok().and_then(|f| f.get(1).map(|t| t.as_c_arg()))) else {
                    return;
                };
                let out = Some(MsgEnv::new());
                let watch = Watch::caller_of(self, &req);
                let stream = Stream { req, tag, out, owner, controller, credit, source, step_queued: false, credit_future: None, _watch: watch };
                drop(self.loop_work().insert_stream(id, stream));
                if is_sync {
                    self.queue_step(py, id);
                }
            }
            Err(e) => {
                let msg = req.env.with(|env| {
                    let reason = failure_to_term(py, env, Failure::Python(e));
                    stream_event(env, req.body, reason)
                });
                send_stream_end(&mut req, &owner, &controller, msg);
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
        let msg = out.with(|env| -> PyResult<RawTerm> {
            let value = py_to_term(env, item).map_err(crate::actors::callback::conv_to_py)?;
            // SAFETY: `copy_raw` gives a term of `out`'s environment, alive for the closure.
            let tag = unsafe { Term::new(env, out.copy_raw(tag)) };
            Ok((py_stream(), tag, (data(), value)).encode(env).as_c_arg())
        });
        let sent = match msg {
            Ok(msg) => {
                out.send_and_clear(&owner, msg);
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
        if matches!(ending, Ending::Error(_)) && s.req.reply.as_ref().is_some_and(|st| st.is_cancelled()) {
            // Ended by the interruption of its cancel: the owner is told it was cancelled.
            super::context::clear_pending_interrupt(py, &self.shared);
            return finish_stream_as(py, s, Ending::Cancelled);
        }
        finish_stream_as(py, s, ending)
    }

    /// The reply state of the request whose task runs now on the loop, if it is a task
    /// or stream of this context.
    pub fn current_task_state(&self, py: Python<'_>) -> Option<std::sync::Arc<super::ReqState>> {
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

/// Send `{py_reply, Ref, {ok, V} | {error, R}}` unless the caller gave up.
fn reply(py: Python<'_>, req: &mut Request, outcome: Result<Bound<'_, PyAny>, Failure>) {
    let Some(state) = req.reply.clone() else { return };
    let body = req.body;
    let msg = req.env.with(|env| {
        let result = match outcome.and_then(|v| py_to_term(env, &v).map_err(Failure::from)) {
            Ok(term) => ok_tuple(env, term),
            Err(failure) => failure_to_term(py, env, failure),
        };
        let tag = get_tuple(unsafe { Term::new(env, body) }).ok()?.get(1).copied()?;
        Some((atoms::py_reply(), tag, result).encode(env).as_c_arg())
    });
    if let Some(msg) = msg {
        if state.try_reply() {
            req.env.send_and_clear(&req.caller, msg);
        }
    }
}

enum Ending {
    Done,
    Cancelled,
    Error(Failure),
}

fn finish_stream_as(py: Python<'_>, mut s: Stream, ending: Ending) {
    let body = s.req.body;
    let msg = s.req.env.with(|env| {
        let event = match ending {
            Ending::Done => done().encode(env),
            Ending::Cancelled => (atoms::error(), atoms::cancelled()).encode(env),
            Ending::Error(failure) => failure_to_term(py, env, failure),
        };
        stream_event(env, body, event)
    });
    send_stream_end(&mut s.req, &s.owner, &s.controller, msg);
}

/// `{py_stream, Ref, Event}` in the request's environment.
fn stream_event(env: Env, body: RawTerm, event: Term) -> Option<RawTerm> {
    let tag = get_tuple(unsafe { Term::new(env, body) }).ok()?.get(1).copied()?;
    Some((py_stream(), tag, event).encode(env).as_c_arg())
}

/// A stream cancelled before it started still ends: `{py_stream, Ref, {error, cancelled}}`
/// to its owner and `{py_stream_finished, Ref}` to its controller. Other cancelled
/// requests have nobody waiting.
fn end_cancelled_stream(req: &mut Request) {
    let body = req.body;
    let ends = req.env.with(|env| -> Option<(LocalPid, LocalPid, RawTerm)> {
        // SAFETY: `body` is a term of `req.env`, alive until the environment is cleared.
        let fields = get_tuple(unsafe { Term::new(env, body) }).ok()?;
        let kind: Atom = fields.first()?.decode().ok()?;
        if kind != stream_start() || fields.len() != 9 {
            return None;
        }
        let owner: LocalPid = fields[6].decode().ok()?;
        let controller: LocalPid = fields[7].decode().ok()?;
        let event = (atoms::error(), atoms::cancelled()).encode(env);
        Some((owner, controller, stream_event(env, body, event)?))
    });
    if let Some((owner, controller, msg)) = ends {
        send_stream_end(req, &owner, &controller, Some(msg));
    }
}

/// The stream's last event to its owner, then `{py_stream_finished, Ref}` to its controller.
fn send_stream_end(req: &mut Request, owner: &LocalPid, controller: &LocalPid, msg: Option<RawTerm>) {
    // The end event is the stream's answer: no `py_reply` goes to the controller as well.
    if let Some(state) = &req.reply {
        let _ = state.try_reply();
    }
    let body = req.body;
    let tag = req.env.with(|env| get_tuple(unsafe { Term::new(env, body) }).ok().and_then(|f| f.get(1).map(|t| t.as_c_arg())));
    if let Some(tag) = tag {
        let mut note = MsgEnv::new();
        let m = note.with(|env| (py_stream_finished(), unsafe { Term::new(env, note.copy_raw(tag)) }).encode(env).as_c_arg());
        note.send_and_clear(controller, m);
    }
    if let Some(msg) = msg {
        req.env.send_and_clear(owner, msg);
    }
}

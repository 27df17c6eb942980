//! What travels through a context's mailbox: typed requests (decoded once, in the
//! submitting NIF), the reply state a waiting caller shares with the context, and the
//! control messages.

use super::quick_reply::Handoff;
use super::ContextShared;
use crate::atoms;
use crate::msg_env::{Held, MsgEnv, OwnedTerm, RawTerm};
use super::handles::EnvRes;
use super::observed::Observed;
use pyo3::{Py, PyAny};
use rustler::types::tuple::get_tuple;
use rustler::{Atom, Encoder, Env, LocalPid, ResourceArc, Term};
use std::mem::ManuallyDrop;
use crate::trace::{Outcome, RequestTrace};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

static NEXT_REQUEST_ID: AtomicU64 = AtomicU64::new(1);

rustler::atoms! {
    call_nesting_too_deep, traced, async_call, async_gather, stream, stream_eval, stream_start, py_stream, py_stream_finished,
    // `ResultOpts`
    term_ = "term", ref_ = "ref", default, list, binary,
}

/// A waiting caller's side of one request: who wins between the actor's answer and the
/// caller's timeout (the `Handoff`), and the gate for messages sent on its behalf.
pub struct ReqState {
    pub id: u64,
    pub ctx: Arc<ContextShared>,
    handoff: Handoff<OwnedTerm>,
    /// Held by `try_cancel` and by a callback message's send, so that a message to the
    /// caller is either sent before the cancel returns or not at all.
    send_gate: Mutex<()>,
    /// The caller exited (its monitor fired): a cancel is then `cancelled`, not `timeout`,
    /// in the request's span.
    caller_gone: AtomicBool,
}

impl ReqState {
    /// `spinning`: the caller polls for the reply before it waits in `receive`.
    pub fn new(ctx: Arc<ContextShared>, spinning: bool) -> ReqState {
        ReqState {
            id: NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed),
            ctx,
            handoff: Handoff::new(spinning),
            send_gate: Mutex::new(()),
            caller_gone: AtomicBool::new(false),
        }
    }

    /// Claim the right to send the reply as a message (for answers that are not replies:
    /// a stream's end event).
    pub fn try_reply(&self) -> bool {
        self.handoff.try_reply()
    }

    /// The caller gives up. Once this returns, no callback message for the request is
    /// sent any more: one being sent finishes first (see `send_unless_cancelled`).
    pub fn try_cancel(&self) -> bool {
        let _gate = self.send_gate.lock().unwrap_or_else(|e| e.into_inner());
        self.handoff.try_cancel()
    }

    /// Run `send` (a message to the caller on the request's behalf) unless the request is
    /// cancelled: `None` when it is, else what `send` answered.
    pub fn send_unless_cancelled(&self, send: impl FnOnce() -> bool) -> Option<bool> {
        let _gate = self.send_gate.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_cancelled() {
            None
        } else {
            Some(send())
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.handoff.is_cancelled()
    }

    /// The caller exited: what cancels the request now is its death, not a timeout.
    pub fn mark_caller_gone(&self) {
        self.caller_gone.store(true, Ordering::Relaxed);
    }

    /// How a request given up by its caller ended, for its span.
    fn cancel_outcome(&self) -> Outcome {
        if self.caller_gone.load(Ordering::Relaxed) {
            Outcome::Cancelled
        } else {
            Outcome::Timeout
        }
    }

    pub fn is_spinning(&self) -> bool {
        self.handoff.is_spinning()
    }

    /// Make a polling caller go to `receive`: messages for it are about to be sent.
    pub fn stop_spinning(&self) {
        self.handoff.stop_spinning();
    }

    /// Caller side: poll for the stored reply for at most `budget` (see `Handoff::spin_for`).
    pub fn spin_for_reply(&self, budget: Duration) -> Option<OwnedTerm> {
        self.handoff.spin_for(budget)
    }
}

/// `Module`, `Function`, `Args`, `Kwargs` of a call, still Erlang terms.
#[derive(Clone, Copy)]
pub struct CallSpec<T> {
    pub module: T,
    pub function: T,
    pub args: T,
    pub kwargs: T,
}

/// How a call's result comes back (`py.erl`'s call options), as `py_request` encodes
/// them: `false` (the defaults, the common case), `true` (2.3.1's `return => ref`), or
/// `{Return, Strict, Arrays}` with `Return` `term | ref`, `Strict` `default | true |
/// false` (`default`: the app env) and `Arrays` `list | binary`.
#[derive(Clone, Copy, Default, PartialEq, Debug)]
pub struct ResultOpts {
    pub return_ref: bool,
    /// `None`: the app env `strict_conversion` decides.
    pub strict: Option<bool>,
    pub arrays: bool,
}

impl ResultOpts {
    fn decode(opts: Term) -> Option<ResultOpts> {
        use rustler::types::atom::{false_, true_};
        if let Ok(return_ref) = opts.decode::<bool>() {
            return Some(ResultOpts { return_ref, ..ResultOpts::default() });
        }
        let (ret, strict, arrays): (Atom, Atom, Atom) = opts.decode().ok()?;
        let return_ref = match ret {
            r if r == ref_() => true,
            r if r == term_() => false,
            _ => return None,
        };
        let strict = match strict {
            s if s == default() => None,
            s if s == true_() => Some(true),
            s if s == false_() => Some(false),
            _ => return None,
        };
        let arrays = match arrays {
            a if a == binary() => true,
            a if a == list() => false,
            _ => return None,
        };
        Some(ResultOpts { return_ref, strict, arrays })
    }
}

/// What a request asks for. `T` is how its Erlang terms are kept: `Held` in the request,
/// `Term` while the actor reads them (`Request::with`). Each variant is one tuple shape
/// built by `py.erl` / `py_stream.erl`.
#[derive(Clone, Copy)]
pub enum Job<T> {
    /// `{call, Ref, M, F, A, Kw, Opts}` (see `ResultOpts`)
    Call { call: CallSpec<T>, opts: ResultOpts },
    /// `{eval, Ref, Code, Locals}`
    Eval { code: T, locals: T },
    /// `{exec, Ref, Code}`
    Exec { code: T },
    /// `{call_method, Ref, PyRef, Method, Args, Kwargs}`
    CallMethod { object: T, method: T, args: T, kwargs: T },
    /// `{getattr, Ref, PyRef, Name}`
    GetAttr { object: T, name: T },
    /// `{to_term, Ref, PyRef}`
    ToTerm { object: T },
    /// `{async_call, Ref, M, F, A, Kw}`
    AsyncCall { call: CallSpec<T> },
    /// `{async_gather, Ref, Calls}`
    AsyncGather { calls: T },
    /// `{stream, Ref, M, F, A, Kw}`
    Stream { call: CallSpec<T> },
    /// `{stream_eval, Ref, Code, Locals}`
    StreamEval { code: T, locals: T },
    /// `{stream_start, Ref, M, F, A, Kw, Owner, Controller, Window}`
    StreamStart { call: CallSpec<T>, owner: LocalPid, controller: LocalPid, window: usize },
}

impl<T: Copy> CallSpec<T> {
    fn map<U>(&self, f: &impl Fn(T) -> U) -> CallSpec<U> {
        CallSpec { module: f(self.module), function: f(self.function), args: f(self.args), kwargs: f(self.kwargs) }
    }
}

impl<T: Copy> Job<T> {
    fn map<U>(&self, f: impl Fn(T) -> U) -> Job<U> {
        match *self {
            Job::Call { call, opts } => Job::Call { call: call.map(&f), opts },
            Job::Eval { code, locals } => Job::Eval { code: f(code), locals: f(locals) },
            Job::Exec { code } => Job::Exec { code: f(code) },
            Job::CallMethod { object, method, args, kwargs } => {
                Job::CallMethod { object: f(object), method: f(method), args: f(args), kwargs: f(kwargs) }
            }
            Job::GetAttr { object, name } => Job::GetAttr { object: f(object), name: f(name) },
            Job::ToTerm { object } => Job::ToTerm { object: f(object) },
            Job::AsyncCall { call } => Job::AsyncCall { call: call.map(&f) },
            Job::AsyncGather { calls } => Job::AsyncGather { calls: f(calls) },
            Job::Stream { call } => Job::Stream { call: call.map(&f) },
            Job::StreamEval { code, locals } => Job::StreamEval { code: f(code), locals: f(locals) },
            Job::StreamStart { call, owner, controller, window } => {
                Job::StreamStart { call: call.map(&f), owner, controller, window }
            }
        }
    }

    /// Runs on the context's asyncio loop (`aio`), not to completion at once (`execute`).
    pub fn is_async(&self) -> bool {
        matches!(
            self,
            Job::AsyncCall { .. } | Job::AsyncGather { .. } | Job::Stream { .. } | Job::StreamEval { .. } | Job::StreamStart { .. }
        )
    }
}

impl<'a> Job<Term<'a>> {
    /// The job of a `{Kind, Ref, ...}` tuple (`fields`), and its `Ref`; `None` for any
    /// other shape.
    fn decode(fields: &[Term<'a>]) -> Option<(Job<Term<'a>>, Term<'a>)> {
        let (kind, rest) = fields.split_first()?;
        let (tag, f) = rest.split_first()?;
        let kind: Atom = kind.decode().ok()?;
        let spec = |f: &[Term<'a>]| CallSpec { module: f[0], function: f[1], args: f[2], kwargs: f[3] };
        let job = match f.len() {
            5 if kind == atoms::call() => Job::Call { call: spec(f), opts: ResultOpts::decode(f[4])? },
            2 if kind == atoms::eval() => Job::Eval { code: f[0], locals: f[1] },
            1 if kind == atoms::exec() => Job::Exec { code: f[0] },
            4 if kind == atoms::call_method() => Job::CallMethod { object: f[0], method: f[1], args: f[2], kwargs: f[3] },
            2 if kind == atoms::getattr() => Job::GetAttr { object: f[0], name: f[1] },
            1 if kind == atoms::to_term() => Job::ToTerm { object: f[0] },
            4 if kind == async_call() => Job::AsyncCall { call: spec(f) },
            1 if kind == async_gather() => Job::AsyncGather { calls: f[0] },
            4 if kind == stream() => Job::Stream { call: spec(f) },
            2 if kind == stream_eval() => Job::StreamEval { code: f[0], locals: f[1] },
            7 if kind == stream_start() => Job::StreamStart {
                call: spec(f),
                owner: f[4].decode().ok()?,
                controller: f[5].decode().ok()?,
                window: f[6].decode().ok()?,
            },
            _ => return None,
        };
        Some((job, *tag))
    }
}

/// Why a request is answered with an error instead of its result.
pub enum ErrorReason {
    Crashed(String),
    Stopped,
    /// Nested this many requests deep, the thread's stack has no room for another.
    TooDeep(usize),
}

impl ErrorReason {
    /// `{error, {context_crashed, Why}}`, `{error, context_stopped}` or
    /// `{error, {call_nesting_too_deep, N}}`.
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        let why = match self {
            ErrorReason::Crashed(why) => (atoms::context_crashed(), why.as_str()).encode(env),
            ErrorReason::Stopped => atoms::context_stopped().encode(env),
            ErrorReason::TooDeep(depth) => (call_nesting_too_deep(), *depth).encode(env),
        };
        (atoms::error(), why).encode(env)
    }
}

/// How a request is answered.
pub enum Answer {
    /// A result term made in the request's own environment (`Request::hold`).
    Result(Held),
    Error(ErrorReason),
}

/// One request: its job, decoded once, whose terms live in the request's own environment
/// (which later carries the reply too), and the duty to answer it. A request is answered
/// once, by `reply` (or `end_stream`); one dropped unanswered answers
/// `{error, context_stopped}` or the crash itself, so a caller is never left waiting for
/// its timeout.
pub struct Request {
    parts: ManuallyDrop<Parts>,
}

pub struct Parts {
    env: MsgEnv,
    job: Job<Held>,
    /// The request's `Ref` (`undefined` for a cast).
    tag: Held,
    pub caller: LocalPid,
    /// The caller's process-bound namespace (`None`: the context's shared namespace).
    pub namespace: Option<ResourceArc<EnvRes>>,
    /// `None` for fire-and-forget requests.
    pub reply: Option<Arc<ReqState>>,
    /// The caller waits in `receive` for the reply and runs Erlang functions that this
    /// request's Python code calls (`erlang.call`); otherwise they run in a new process.
    pub caller_waits: bool,
    /// A Python exception answers `{Class, Message, Details}` (`py_errors`): the request
    /// came as `{error_details, Request}`.
    pub error_details: bool,
    /// The request's span, while tracing is on (see `crate::trace`).
    pub trace: Option<RequestTrace>,
    /// The request came as `{observed, Request}`: its reply and stream end carry what
    /// the caller's `telemetry` events need (`observed.rs`).
    observed: Option<Observed>,
}

impl std::ops::Deref for Request {
    type Target = Parts;
    fn deref(&self) -> &Parts {
        &self.parts
    }
}

impl Request {
    /// Decode `request` (a `{Kind, Ref, ...}` tuple of the caller's) into a request of
    /// its own environment; `None` when it has no known shape.
    pub fn decode(
        request: Term,
        caller: LocalPid,
        namespace: Option<ResourceArc<EnvRes>>,
        reply: Option<Arc<ReqState>>,
        caller_waits: bool,
    ) -> Option<Request> {
        let env = MsgEnv::reuse_or_new();
        // Decoded on the copy, whose terms the job keeps (a malformed request is rare).
        let observed = Observed::unwrap_request(request);
        let request = observed.unwrap_or(request);
        let decoded = env.with(|e| {
            let mut fields = get_tuple(request.in_env(e)).ok()?;
            // `{traced, Traceparent, Request}`: the caller runs in a trace (py_request).
            let mut traceparent = None;
            if let [wrap, parent, inner] = fields.as_slice() {
                if wrap.decode::<Atom>().ok() == Some(traced()) {
                    traceparent = Some(*parent);
                    fields = get_tuple(*inner).ok()?;
                }
            }
            let error_details = match fields.as_slice() {
                [wrap, inner] if wrap.decode::<Atom>().ok() == Some(atoms::error_details()) => {
                    fields = get_tuple(*inner).ok()?;
                    true
                }
                _ => false,
            };
            let (job, tag) = Job::decode(&fields)?;
            let trace = begin_trace(&job, reply.is_some(), caller_waits, traceparent);
            Some((job.map(|t| env.hold(t)), env.hold(tag), error_details, trace))
        });
        let Some((job, tag, error_details, trace)) = decoded else {
            env.recycle();
            return None;
        };
        let observed = observed.map(|_| Observed::new());
        Some(Request { parts: ManuallyDrop::new(Parts { env, job, tag, caller, namespace, reply, caller_waits, error_details, trace, observed }) })
    }

    /// Read the job's terms.
    pub fn with<R>(&self, f: impl for<'a> FnOnce(Env<'a>, Job<Term<'a>>) -> R) -> R {
        let env = &self.parts.env;
        env.with(|e| f(e, self.parts.job.map(|h| env.term(e, h))))
    }

    /// Keep a term made in `with` (a result) until it is answered.
    pub fn hold(&self, term: Term) -> Held {
        self.parts.env.hold(term)
    }

    /// The job's kind, without its terms.
    pub fn is_async(&self) -> bool {
        self.parts.job.is_async()
    }

    /// The raw `Ref`, for a callback message that copies it while this request is held.
    pub fn tag_raw(&self) -> RawTerm {
        self.parts.env.with(|e| self.parts.env.term(e, self.parts.tag).as_c_arg())
    }

    /// Copy the `Ref` into another environment (a stream's item messages).
    pub fn copy_tag_into(&self, out: &MsgEnv) -> Held {
        out.copy_held(&self.parts.env, self.parts.tag)
    }

    pub fn id(&self) -> u64 {
        self.parts.reply.as_ref().map_or(0, |s| s.id)
    }

    pub fn namespace_id(&self) -> u64 {
        self.parts.namespace.as_ref().map_or(0, |e| e.env_id)
    }

    pub fn is_cancelled(&self) -> bool {
        self.parts.reply.as_ref().is_some_and(|s| s.is_cancelled())
    }

    /// A polling caller waits in its submit NIF for this request's reply.
    pub fn is_polled(&self) -> bool {
        self.parts.reply.as_ref().is_some_and(|s| s.is_spinning())
    }

    /// The reply will not come soon, or will come as messages: the caller should wait in
    /// `receive` rather than poll.
    pub fn stop_caller_polling(&self) {
        if let Some(state) = &self.parts.reply {
            state.stop_spinning();
        }
    }

    /// Answer the request: the stored reply of a polling caller, else
    /// `{py_reply, Ref, Result}` to the caller, unless the caller gave up meanwhile.
    /// Answers `true` when the caller had cancelled the request (nothing was answered).
    pub fn reply(self, answer: Answer) -> bool {
        self.into_parts().answer(answer)
    }

    /// The context starts running the request (for an observed request's queue wait).
    pub fn mark_started(&self) {
        if let Some(observed) = &self.parts.observed {
            observed.mark_started();
        }
    }

    /// An item of this stream went to its owner (counted for an observed stream).
    pub fn count_item(&self) {
        if let Some(observed) = &self.parts.observed {
            observed.count_item();
        }
    }

    /// A refused request: its caller gets the refusal as the NIF's result.
    pub fn disarm(self) {
        let parts = self.into_parts();
        if let Some(trace) = &parts.trace {
            trace.finish(match &parts.reply {
                Some(state) if state.is_cancelled() => state.cancel_outcome(),
                _ => Outcome::Error { class: "refused".into(), text: "the context refused the request".into() },
            });
        }
    }

    /// The request's span, while tracing is on.
    pub fn trace(&self) -> Option<&RequestTrace> {
        self.parts.trace.as_ref()
    }

    /// End a stream: its last `Event` to the owner as `{py_stream, Ref, Event}`, then
    /// `{py_stream_finished, Ref}` to the controller. That is the stream's answer, so no
    /// `py_reply` goes to the caller (its controller) as well; both are sent even after a
    /// cancel, so that the owner always learns the stream ended.
    pub fn end_stream(self, owner: &LocalPid, controller: &LocalPid, event: impl for<'a> FnOnce(Env<'a>) -> Term<'a>) {
        let mut parts = self.into_parts();
        if let Some(state) = parts.reply.take() {
            let _ = state.try_reply();
        }
        let env = &parts.env;
        let event = env.with(|e| env.hold(event(e)));
        let note = env.with(|e| {
            let tag = env.term(e, parts.tag);
            OwnedTerm::build(MsgEnv::new(), |n| match &parts.observed {
                Some(o) => (py_stream_finished(), tag.in_env(n), o.items(), env.term(e, event).in_env(n)).encode(n),
                None => (py_stream_finished(), tag.in_env(n)).encode(n),
            })
        });
        note.send(controller);
        let msg = env.with(|e| {
            let event = env.term(e, event);
            if let Some(trace) = &parts.trace {
                trace.finish(Outcome::of_stream_end(event));
            }
            env.hold((py_stream(), env.term(e, parts.tag), event).encode(e))
        });
        parts.env.send_held(owner, msg);
    }

    fn into_parts(self) -> Parts {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped (ManuallyDrop), so `parts` is taken exactly once
        // and not touched again.
        unsafe { ManuallyDrop::take(&mut this.parts) }
    }
}

impl Parts {
    fn answer(mut self, answer: Answer) -> bool {
        let result = match answer {
            Answer::Result(held) => held,
            Answer::Error(reason) => self.env.with(|e| self.env.hold(reason.encode(e))),
        };
        let trace = self.trace.take();
        let traced = trace.map(|trace| {
            let (outcome, items) = self.env.with(|e| Outcome::of_reply(self.env.term(e, result), trace.is_stream()));
            if let Some(n) = items {
                trace.set_items(n);
            }
            (trace, outcome)
        });
        let result = match &self.observed {
            Some(o) => self.env.with(|e| self.env.hold(o.wrap_reply(e, self.env.term(e, result)))),
            None => result,
        };
        let Some(state) = self.reply.take() else {
            if let Some((trace, outcome)) = traced {
                trace.finish(outcome);
            }
            return false;
        };
        // A caller still polling in its submit NIF takes the result from there; no message.
        if state.is_spinning() {
            match state.handoff.store(OwnedTerm::new(self.env, result)) {
                Ok(()) => {
                    if let Some((trace, outcome)) = traced {
                        trace.finish(outcome);
                    }
                    return false;
                }
                Err(back) => (self.env, _) = back.into_parts(),
            }
        }
        if !state.try_reply() {
            if let Some((trace, _)) = traced {
                trace.finish(state.cancel_outcome());
            }
            return true;
        }
        if let Some((trace, outcome)) = traced {
            trace.finish(outcome);
        }
        let env = &self.env;
        let msg = env.with(|e| env.hold((atoms::py_reply(), env.term(e, self.tag), env.term(e, result)).encode(e)));
        self.env.send_held(&self.caller, msg);
        false
    }
}

impl Drop for Request {
    /// A request nobody answered (a context that stopped and dropped its mailbox with the
    /// request still in it) answers `{error, context_stopped}` or the crash. Requests are
    /// only dropped armed off the BEAM's schedulers (NIFs disarm what they refuse), so
    /// the NULL-env send is allowed.
    fn drop(&mut self) {
        // SAFETY: `drop` runs once and `parts` is not used after this take.
        let parts = unsafe { ManuallyDrop::take(&mut self.parts) };
        let Some(state) = &parts.reply else { return };
        let reason = match state.ctx.status.load(Ordering::Acquire) {
            crate::mailbox::CRASHED => ErrorReason::Crashed(state.ctx.crash_reason()),
            _ => ErrorReason::Stopped,
        };
        parts.answer(Answer::Error(reason));
    }
}

/// The span of a request of this job, kind and caller (see `crate::trace`); `None`
/// while the runtime's spans are off.
fn begin_trace(job: &Job<Term>, has_reply: bool, caller_waits: bool, traceparent: Option<Term>) -> Option<RequestTrace> {
    if !crate::spans::runtime_enabled() {
        return None;
    }
    let text = crate::trace::text_of;
    let (name, module, function) = match job {
        Job::Call { call, .. } => {
            let name = match (has_reply, caller_waits) {
                (false, _) => "py.cast",
                (true, false) => "py.spawn_call",
                (true, true) => "py.call",
            };
            (name, text(call.module), text(call.function))
        }
        Job::AsyncCall { call } => ("py.async_call", text(call.module), text(call.function)),
        Job::Stream { call } | Job::StreamStart { call, .. } => ("py.stream", text(call.module), text(call.function)),
        Job::StreamEval { .. } => ("py.stream", None, None),
        Job::Eval { .. } => ("py.eval", None, None),
        Job::Exec { .. } => ("py.exec", None, None),
        Job::CallMethod { method, .. } => ("py.call_method", None, text(*method)),
        Job::GetAttr { .. } => ("py.getattr", None, None),
        Job::ToTerm { .. } => ("py.to_term", None, None),
        Job::AsyncGather { .. } => ("py.async_gather", None, None),
    };
    let traceparent = traceparent.and_then(|t| t.decode::<rustler::Binary>().ok());
    RequestTrace::begin(name, module, function, traceparent.as_ref().map(|b| b.as_slice()))
}

/// What an Erlang function called from Python answered: `{ok, V}` or `{error, R, Text}`
/// in its own environment, or nothing when the wait was abandoned.
pub enum CallbackOutcome {
    Answered(OwnedTerm),
    /// The waiting request was cancelled or its caller died.
    Abandoned,
    /// The process running the Erlang function died without answering.
    RunnerDied,
}

/// Which process of an Erlang callback died before the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gone {
    /// The request's caller, which was running the function itself: nobody wants the
    /// result, so the Python code is interrupted.
    Caller,
    /// A process running the function on the caller's behalf: the call fails.
    Runner,
}

// `Run` is nearly every message: boxing it would cost an allocation per request to save
// channel slot space, which the channel's block allocation already amortises.
#[allow(clippy::large_enum_variant)]
pub enum Msg {
    Run(Request),
    /// The Erlang side lost its last handle to a process-bound namespace.
    DropEnv(u64),
    /// A py ref was garbage collected; the object must be released under the GIL of its
    /// interpreter (the id it carries).
    DropObject(Py<PyAny>, crate::interp::InterpreterId),
    /// The answer of an Erlang function that Python code called.
    CallbackReply(u64, OwnedTerm),
    /// Stop waiting for callback `id`: the Erlang process running it died.
    CallbackAbort(u64, Gone),
    /// Process `pid` runs the Erlang function of callback `id` on behalf of its caller;
    /// the watch (kept until the call is answered) aborts the call if `pid` dies first.
    JoinChain(u64, LocalPid, ResourceArc<crate::mailbox::handles::CallerWatch>),
    /// The caller gave up on request `id`: cancel its task or stream, and re-check waits.
    Cancelled(u64),
    /// The stream of request `id` may send `n` more items.
    Credit(u64, usize),
    Stop,
    /// Test hook: make the actor panic, to exercise crash handling.
    Panic,
}

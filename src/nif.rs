//! NIF entry points. Each one decodes its arguments, hands a message to an actor (or the
//! start-up thread) and returns: no Python runs here and the GIL is never taken. The one
//! wait is `submit_sync`'s bounded poll for a quick reply (`reply_spin_us`).

use crate::actors::context::{self, ContextConfig};
use crate::interp::InterpMode;
use crate::mailbox::{Mailbox, Msg, ReqState, Request, SubmitError};
use crate::atoms;
use crate::msg_env::{MsgEnv, OwnedTerm};
use crate::actors::thread_call::ThreadCallRes;
use crate::mailbox::handles::{CallerWatch, ContextRes, EnvRes, PyRefRes, ReqRes};
use crate::mailbox::request::Gone;
use crate::runtime::{self, InitOptions, InitStatus};
use rustler::{Encoder, Env, LocalPid, NifResult, ResourceArc, Term};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

static NEXT_ENV_ID: AtomicU64 = AtomicU64::new(1);

/// Start Python (once per VM). Answers `ok`, `{error, Why}`, or `pending` after which the
/// caller receives `{py_init, ok | {error, Why}}`.
#[rustler::nif]
fn init<'a>(env: Env<'a>, opts: Term<'a>) -> NifResult<Term<'a>> {
    let get = |key: &str| -> Option<Term<'a>> {
        opts.map_get(rustler::types::atom::Atom::from_str(env, key).ok()?).ok()
    };
    let text = |t: Term| crate::convert::term_to_py_str(t);
    let shim_dir = get("shim_dir").and_then(text).ok_or(rustler::Error::BadArg)?;
    let python_path = match get("python_path") {
        Some(list) => crate::convert::proper_list(list).ok_or(rustler::Error::BadArg)?.into_iter().filter_map(text).collect(),
        None => Vec::new(),
    };
    let venv = get("venv").and_then(text).filter(|v| !v.is_empty() && v != "undefined");
    if let Some(limit) = get("atom_limit").and_then(|t| t.decode::<usize>().ok()) {
        crate::convert::set_atom_limit(limit);
    }
    crate::mailbox::set_reply_spin(get("reply_spin_us").and_then(|t| t.decode::<u64>().ok()));
    if let Some(depth) = get("max_nesting").and_then(|t| t.decode::<usize>().ok()) {
        crate::convert::set_max_nesting(depth);
    }
    crate::convert::set_strict_default(get("strict_conversion").and_then(|t| t.decode::<bool>().ok()).unwrap_or(false));
    let options = InitOptions { shim_dir, python_path, venv };
    Ok(match runtime::start(env.pid(), options) {
        InitStatus::Ready(Ok(())) => atoms::ok().encode(env),
        InitStatus::Ready(Err(why)) => (atoms::error(), why).encode(env),
        InitStatus::Started => atoms::pending().encode(env),
    })
}

/// Where Python's stdout/stderr and tracebacks are sent.
#[rustler::nif]
fn set_output_handler(pid: LocalPid) -> rustler::Atom {
    crate::output::set_output_handler(pid);
    atoms::ok()
}

/// The output handler took a message that counted for `Cost` bytes of its backlog.
#[rustler::nif]
fn output_taken(cost: usize) -> rustler::Atom {
    crate::output::taken(cost);
    atoms::ok()
}

/// `{Writes, Bytes, Records}` dropped on the way to the output handler since it last asked.
#[rustler::nif]
fn output_drops() -> (u64, u64, u64) {
    let drops = crate::output::take_drops();
    (drops.writes, drops.bytes, drops.records)
}

/// Start a context actor owned by the calling process.
/// `Mode` is `main` (the main interpreter) or `own_gil` (a sub-interpreter of its own,
/// CPython 3.12+; `{error, {unsupported_mode, own_gil}}` before). The owner receives
/// `{py_context_ready, Id}` once the context serves, or `{py_context_crashed, Why}`.
#[rustler::nif]
fn context_start<'a>(env: Env<'a>, index: u32, max_queued: usize, mode: rustler::Atom) -> NifResult<Term<'a>> {
    let mode = if mode == atoms::main() {
        InterpMode::Main
    } else if mode == atoms::own_gil() {
        if !crate::interp::OWN_GIL_SUPPORTED {
            return Ok((atoms::error(), (atoms::unsupported_mode(), mode)).encode(env));
        }
        InterpMode::OwnGil
    } else {
        return Err(rustler::Error::BadArg);
    };
    let config = ContextConfig {
        index,
        max_queued: max_queued.max(1),
        owner: env.pid(),
        mode,
        prepare: crate::runtime::prepare_interpreter,
    };
    let mailbox = context::start(config).map_err(|e| rustler::Error::Term(Box::new(e.to_string())))?;
    Ok((atoms::ok(), ResourceArc::new(ContextRes { mailbox, primary: true })).encode(env))
}

/// What this build's CPython offers: `#{subinterp, free_threaded, version}`.
#[rustler::nif]
fn python_features(env: Env) -> NifResult<Term> {
    // SAFETY: `Py_GetVersion` answers a static C string; it needs no GIL.
    let text = unsafe { std::ffi::CStr::from_ptr(pyo3::ffi::Py_GetVersion()) }.to_string_lossy();
    let short = text.split_whitespace().next().unwrap_or("").to_string();
    let map = rustler::Term::map_new(env)
        .map_put(atoms::subinterp(), crate::interp::OWN_GIL_SUPPORTED)?
        .map_put(atoms::free_threaded(), crate::interp::FREE_THREADED)?
        .map_put(atoms::version(), short.as_str())?;
    Ok(map)
}

#[rustler::nif]
fn context_stop(ctx: ResourceArc<ContextRes>) -> rustler::Atom {
    ctx.mailbox.control(Msg::Stop);
    atoms::ok()
}

/// Test hook: make the actor panic, so crash handling can be exercised end to end.
#[rustler::nif]
fn context_panic(ctx: ResourceArc<ContextRes>) -> rustler::Atom {
    ctx.mailbox.control(Msg::Panic);
    atoms::ok()
}

#[rustler::nif]
fn context_id(ctx: ResourceArc<ContextRes>) -> u64 {
    ctx.mailbox.shared.id
}

/// A new process-bound namespace handle on `ctx`; the namespace itself is created lazily
/// by the actor and freed when the last copy of this handle is garbage collected.
#[rustler::nif]
fn env_new(ctx: ResourceArc<ContextRes>) -> ResourceArc<EnvRes> {
    ResourceArc::new(EnvRes {
        env_id: NEXT_ENV_ID.fetch_add(1, Ordering::Relaxed),
        mailbox: ctx.mailbox.clone(),
    })
}

/// Stop the context a namespace handle belongs to. The `subinterp_*` handle pool keeps
/// only namespace handles, which do not keep a context alive, so that a handle's context
/// still ends when the handle itself is garbage collected.
#[rustler::nif]
fn env_context_stop(local_env: ResourceArc<EnvRes>) -> rustler::Atom {
    local_env.mailbox.control(Msg::Stop);
    atoms::ok()
}

/// Queue `{Kind, Ref, ...}` on the context (or the context owning a py ref). The reply
/// `{py_reply, Ref, Result}` goes to the caller. `CallerWaits` says the caller waits in
/// `receive` and runs the Erlang functions Python calls meanwhile (`py_callback`
/// messages). Answers `{ok, Handle}` for `cancel/1`.
#[rustler::nif]
fn submit<'a>(env: Env<'a>, target: Term<'a>, local_env: Term<'a>, request: Term<'a>, caller_waits: bool) -> NifResult<Term<'a>> {
    queue_request(env, target, local_env, request, caller_waits, false)
}

/// `submit/4` for a caller that waits: when the context is idle, poll briefly for the
/// reply and answer `{reply, Result}` directly. The poll is bounded (`reply_spin_us`,
/// 50 µs by default) and does not take the GIL; it saves the wake-ups of a message
/// from a foreign thread to a process whose scheduler went to sleep. Otherwise (or when
/// the reply takes longer) answers `{ok, Handle}` and the reply comes as a message.
#[rustler::nif]
fn submit_sync<'a>(env: Env<'a>, target: Term<'a>, local_env: Term<'a>, request: Term<'a>) -> NifResult<Term<'a>> {
    queue_request(env, target, local_env, request, true, true)
}

fn queue_request<'a>(
    env: Env<'a>,
    target: Term<'a>,
    local_env: Term<'a>,
    request: Term<'a>,
    caller_waits: bool,
    may_poll: bool,
) -> NifResult<Term<'a>> {
    let mailbox = target_mailbox(target)?;
    let local_env = env_for(&mailbox, local_env)?;
    let polling = may_poll && mailbox.claim_spinner();
    let state = Arc::new(ReqState::new(mailbox.shared.clone(), polling));
    let Some(req) = Request::decode(request, env.pid(), local_env, Some(state.clone()), caller_waits) else {
        if polling {
            mailbox.shared.quick_reply.abandon();
        }
        return Err(rustler::Error::BadArg);
    };
    if let Err(e) = mailbox.submit(req) {
        if polling {
            mailbox.shared.quick_reply.abandon();
        }
        return Ok(submit_error(env, e));
    }
    if polling {
        let stored = poll_for_reply(env, &state);
        mailbox.shared.quick_reply.release(stored.is_some());
        if let Some(reply) = stored {
            let (result, reply_env) = reply.copy_into(env);
            reply_env.recycle();
            return Ok((atoms::reply(), result).encode(env));
        }
    }
    Ok((atoms::ok(), ResourceArc::new(ReqRes { state, mailbox })).encode(env))
}

/// Poll `state` for a stored reply for at most `reply_spin_us`, charging the time to the
/// caller's time slice as work done in a NIF should (a 1 ms slice is 100 %).
fn poll_for_reply(env: Env, state: &ReqState) -> Option<OwnedTerm> {
    let started = std::time::Instant::now();
    let stored = state.spin_for_reply(crate::mailbox::reply_spin());
    let percent = (started.elapsed().as_micros() / 10) as i32;
    if percent > 0 {
        rustler::schedule::consume_timeslice(env, percent.min(100));
    }
    stored
}

/// Like `submit/3` without a reply.
#[rustler::nif]
fn cast<'a>(env: Env<'a>, target: Term<'a>, local_env: Term<'a>, request: Term<'a>) -> NifResult<Term<'a>> {
    let mailbox = target_mailbox(target)?;
    let local_env = env_for(&mailbox, local_env)?;
    let req = Request::decode(request, env.pid(), local_env, None, false).ok_or(rustler::Error::BadArg)?;
    Ok(match mailbox.submit(req) {
        Ok(()) => atoms::ok().encode(env),
        Err(e) => submit_error(env, e),
    })
}

/// Give up on a request: `cancelled` (no reply will ever be sent; running Python code is
/// interrupted) or `replied` (the reply is already on its way to the caller).
#[rustler::nif]
fn cancel(req: ResourceArc<ReqRes>) -> rustler::Atom {
    if req.state.try_cancel() {
        crate::mailbox::interrupts::request(req.state.ctx.clone(), req.state.id);
        // Cancels a task or stream; a request waiting for Erlang notices it when woken.
        req.mailbox.control(Msg::Cancelled(req.state.id));
        atoms::cancelled()
    } else {
        atoms::replied()
    }
}

#[rustler::nif]
fn is_ref(term: Term) -> bool {
    term.decode::<ResourceArc<PyRefRes>>().is_ok()
}

/// Drop the object behind a py ref now (`py:release/1`): `true` when it was held,
/// `false` when it had been released already.
#[rustler::nif]
fn ref_release(py_ref: ResourceArc<PyRefRes>) -> bool {
    py_ref.release()
}

fn target_mailbox(target: Term) -> NifResult<Mailbox> {
    if let Ok(ctx) = target.decode::<ResourceArc<ContextRes>>() {
        return Ok(ctx.mailbox.clone());
    }
    let py_ref: ResourceArc<PyRefRes> = target.decode()?;
    Ok(py_ref.mailbox.clone())
}

fn env_for(mailbox: &Mailbox, local_env: Term) -> NifResult<Option<ResourceArc<EnvRes>>> {
    match local_env.decode::<ResourceArc<EnvRes>>() {
        Ok(e) if e.mailbox.shared.id == mailbox.shared.id => Ok(Some(e)),
        Ok(_) => Err(rustler::Error::BadArg),
        Err(_) => Ok(None),
    }
}

/// The answer of an Erlang function that Python code on `ctx` called:
/// `{ok, Value}` or `{error, Reason, Text}`.
#[rustler::nif]
fn callback_reply(ctx: Term, callback_id: u64, answer: Term) -> NifResult<rustler::Atom> {
    let answer = OwnedTerm::build(MsgEnv::new(), |e| answer.in_env(e));
    if let Ok(ctx) = ctx.decode::<ResourceArc<ContextRes>>() {
        ctx.mailbox.control(Msg::CallbackReply(callback_id, answer));
    } else {
        // A call from a thread or a foreign loop: its caller waits on a channel of its own.
        let call: ResourceArc<ThreadCallRes> = ctx.decode()?;
        call.deliver(crate::actors::thread_call::Outcome::Answered(answer));
    }
    Ok(atoms::ok())
}

/// The dispatcher spawned `runner` for a call made from a thread (`ThreadCallRes`): watch
/// the runner from now on instead of the dispatcher, so that its exit ends the wait.
#[rustler::nif]
fn thread_call_runner(env: Env, call: ResourceArc<ThreadCallRes>, runner: LocalPid) -> rustler::Atom {
    if call.monitor(Some(env), &runner).is_none() {
        // Exited already: it answered first (the first outcome wins), or never will.
        call.deliver(crate::actors::thread_call::Outcome::Gone);
    }
    let dispatcher_watch = call.dispatcher_watch.lock().unwrap().take();
    if let Some(watch) = dispatcher_watch {
        call.demonitor(Some(env), &watch);
    }
    atoms::ok()
}

/// The calling process runs the Erlang function of callback `id` for a request on `ctx`:
/// its own requests to `ctx` belong to that call chain and are served while it waits. It
/// is watched: if it dies before it answers, the call fails in Python rather than leaving
/// the context (or its event loop) waiting for ever.
#[rustler::nif]
fn join_chain(env: Env, ctx: ResourceArc<ContextRes>, callback_id: u64) -> rustler::Atom {
    let watch = ResourceArc::new(CallerWatch { mailbox: ctx.mailbox.clone(), callback_id, gone: Gone::Runner });
    // Sent before the monitor can fire: the caller is alive while this NIF runs, so its
    // `CallbackAbort` can only come after this message.
    ctx.mailbox.control(Msg::JoinChain(callback_id, env.pid(), watch.clone()));
    watch.monitor(Some(env), &env.pid());
    atoms::ok()
}

/// The owner of the stream started by request `handle` can take `n` more items.
#[rustler::nif]
fn stream_credit(req: ResourceArc<ReqRes>, n: usize) -> rustler::Atom {
    req.mailbox.control(Msg::Credit(req.state.id, n));
    atoms::ok()
}

/// The process that runs Erlang functions called from requests whose caller does not wait.
#[rustler::nif]
fn set_callback_handler(pid: LocalPid) -> rustler::Atom {
    crate::actors::callback::set_dispatcher(pid);
    atoms::ok()
}

/// Record whether a function name is registered (for `erlang.name` lookups).
#[rustler::nif]
fn set_function_registered(name: String, registered: bool) -> rustler::Atom {
    crate::actors::callback::set_registered(name, registered);
    atoms::ok()
}

#[rustler::nif]
fn clear_registered_functions() -> rustler::Atom {
    crate::actors::callback::clear_registered();
    atoms::ok()
}

fn submit_error(env: Env, e: SubmitError) -> Term {
    let reason = match e {
        SubmitError::Overloaded(queued, max) => (atoms::overloaded(), queued, max).encode(env),
        SubmitError::Stopped => atoms::context_stopped().encode(env),
        SubmitError::Crashed(why) => (atoms::context_crashed(), why).encode(env),
    };
    (atoms::error(), reason).encode(env)
}

/// The finished spans of one trace (`TraceId`: 32 hex digits), taken out of the store.
#[rustler::nif(schedule = "DirtyCpu")]
fn tracing_take<'a>(env: Env<'a>, trace_id: rustler::Binary<'a>) -> NifResult<Vec<Term<'a>>> {
    let id = crate::trace::propagation::parse_trace_id(trace_id.as_slice()).ok_or(rustler::Error::BadArg)?;
    Ok(crate::spans::take_trace(env, id))
}

rustler::atoms! { otlp_endpoint = "endpoint", otlp_runtime = "runtime" }

/// Export spans over OTLP/HTTP to `endpoint` (replacing, after a flush, an exporter that
/// runs). Dirty: replacing one waits for its flush (at most 5 s).
#[rustler::nif(schedule = "DirtyIo")]
fn tracing_export_start(env: Env, endpoint: String, service_name: String) -> Term {
    use crate::otlp_export::{start, Config, StartError};
    match start(Config { endpoint, service_name }) {
        Ok(()) => atoms::ok().encode(env),
        Err(StartError::Endpoint(why)) => (atoms::error(), (otlp_endpoint(), why)).encode(env),
        Err(StartError::Runtime(why)) => (atoms::error(), (otlp_runtime(), why)).encode(env),
    }
}

/// Stop exporting, after sending what is queued (at most 5 s). Dirty for that wait.
#[rustler::nif(schedule = "DirtyIo")]
fn tracing_export_stop() -> rustler::Atom {
    crate::otlp_export::stop();
    atoms::ok()
}

/// The export queue and counts since the exporter started.
#[rustler::nif]
fn tracing_export_stats(env: Env) -> Term {
    let s = crate::otlp_export::stats();
    let pairs = [
        ("running", s.running.encode(env)),
        ("queue_len", s.queue_len.encode(env)),
        ("queue_capacity", crate::otlp_export::QUEUE_CAPACITY.encode(env)),
        ("queued", s.queued.encode(env)),
        ("exported", s.exported.encode(env)),
        ("dropped_queue_full", s.dropped_queue_full.encode(env)),
        ("dropped_export_failed", s.dropped_export_failed.encode(env)),
    ];
    let mut map = Term::map_new(env);
    for (key, value) in pairs {
        if let Ok(key) = rustler::Atom::from_str(env, key) {
            map = map.map_put(key.encode(env), value).unwrap_or(map);
        }
    }
    map
}

//! Erlang calls that no context serves the answer of: `erlang.call` from a Python thread
//! that Python code started itself, and `erlang.async_call` awaited in an asyncio loop
//! other than a context's own (`asyncio.run` inside a request, a loop in a thread).
//!
//! The call goes to the `py_callbacks` dispatcher, whose runner process answers through a
//! `ThreadCallRes` handle instead of a context's mailbox: a context may be busy inside the
//! very request that waits for the thread or runs the loop, so the answer must not depend
//! on it serving its mailbox. A synchronous caller waits on a channel of its own with the
//! GIL released; a future is resolved by a resolver thread through
//! `loop.call_soon_threadsafe`, because the answer arrives on a BEAM scheduler, which must
//! never take the GIL.

use super::callback::{answer_to_py, dispatcher};
use crate::convert::conv_to_py;
use crate::mailbox::Mailbox;
use crate::atoms;
use crate::convert::py_to_term;
use crate::interp_kit::{self, Class};
use crate::msg_env::{MsgEnv, OwnedTerm};
use crate::mailbox::handles::{ContextRes, EnvRes};
use crossbeam_channel::Sender;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use rustler::{Encoder, ResourceArc};
use std::sync::OnceLock;

const NOT_RUNNING: &str = "erlang_python is not running";
const GONE: &str = "the Erlang process that should run the function exited before answering";

/// The outcome of one call: the runner's answer (`{ok, V}` or `{error, R, Text}`), or
/// `Gone` when the runner (or the dispatcher, before spawning it) exited first.
pub enum Outcome {
    Answered(OwnedTerm),
    Gone,
}

/// Where an outcome goes.
pub enum Sink {
    /// A thread blocked in `erlang.call`.
    Waiter(Sender<Outcome>),
    /// An `erlang.async_call` future and the loop it belongs to. The call's handle owns
    /// them, so no table outside the interpreter that made them holds Python objects.
    Future(PendingFuture),
}

pub struct PendingFuture {
    event_loop: Py<PyAny>,
    future: Py<PyAny>,
}

impl Sink {
    pub fn deliver(self, outcome: Outcome) {
        match self {
            Sink::Waiter(tx) => drop(tx.send(outcome)),
            // The resolver drops the objects with the GIL held (this may run on a BEAM
            // scheduler, which never takes it).
            Sink::Future(pending) => drop(resolver().send((pending, outcome))),
        }
    }
}

/// The context a call was made on, when known: the runner adopts its caller's namespace.
pub struct Origin {
    pub mailbox: Mailbox,
    pub local_env: Option<ResourceArc<EnvRes>>,
}

/// `erlang.call` from a thread that is not a context's. Other threads (and the context
/// thread that waits for this one) run meanwhile: the GIL is released for the wait.
pub fn call(py: Python<'_>, name: &str, args: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    send_call(name, args, Sink::Waiter(tx), None)?;
    match py.detach(|| rx.recv()) {
        Ok(Outcome::Answered(answer)) => answer.with(|_, term| answer_to_py(py, term)),
        _ => Err(interp_kit::error(py, Class::ProcessError, GONE)),
    }
}

/// `erlang.async_call` awaited in `event_loop`, a running loop that is not a context's own.
pub fn async_call(
    name: &str,
    args: &Bound<'_, PyTuple>,
    event_loop: &Bound<'_, PyAny>,
    origin: Option<Origin>,
) -> PyResult<Py<PyAny>> {
    // Started here, on a Python thread, rather than by the first answer, which a BEAM
    // scheduler delivers.
    resolver();
    let future = event_loop.call_method0("create_future")?;
    let pending = PendingFuture { event_loop: event_loop.clone().unbind(), future: future.clone().unbind() };
    // A call that is not sent is disarmed there, dropping its sink (with the GIL, here).
    send_call(name, args, Sink::Future(pending), origin)?;
    Ok(future.unbind())
}

/// Send `{py_thread_callback, Call, Ctx | undefined, Name, Args, Env | undefined}` to the
/// dispatcher, watching it until it hands the call to a runner (`py_nif:thread_call_runner/2`).
fn send_call(name: &str, args: &Bound<'_, PyTuple>, sink: Sink, origin: Option<Origin>) -> PyResult<()> {
    let dispatcher = dispatcher().ok_or_else(|| PyRuntimeError::new_err(NOT_RUNNING))?;
    let call = ResourceArc::new(ThreadCallRes::new(sink));
    let msg = match message(&call, name, args, origin) {
        Ok(built) => built,
        Err(err) => {
            call.disarm();
            return Err(err);
        }
    };
    // Python threads are never the VM's own, so the monitor takes no environment. A
    // dispatcher that is gone (the application stopped) cannot be monitored.
    let Some(watch) = call.monitor(None, &dispatcher) else {
        call.disarm();
        return Err(PyRuntimeError::new_err(NOT_RUNNING));
    };
    *call.dispatcher_watch.lock().unwrap() = Some(watch);
    if !msg.send(&dispatcher) {
        call.disarm();
        return Err(PyRuntimeError::new_err(NOT_RUNNING));
    }
    Ok(())
}

fn message(
    call: &ResourceArc<ThreadCallRes>,
    name: &str,
    args: &Bound<'_, PyTuple>,
    origin: Option<Origin>,
) -> PyResult<OwnedTerm> {
    OwnedTerm::try_build(MsgEnv::new(), |e| -> PyResult<_> {
        let mut items = Vec::with_capacity(args.len());
        for arg in args.iter() {
            items.push(py_to_term(e, &arg).map_err(conv_to_py)?);
        }
        let (ctx, local_env) = match origin {
            Some(Origin { mailbox, local_env }) => (
                ResourceArc::new(ContextRes::view(mailbox)).encode(e),
                local_env.map_or_else(|| atoms::undefined().encode(e), |l| l.encode(e)),
            ),
            None => (atoms::undefined().encode(e), atoms::undefined().encode(e)),
        };
        let name_bin = crate::convert::py_bytes_to_binary(e, name.as_bytes());
        let fields = [py_thread_callback().encode(e), call.encode(e), ctx, name_bin, items.encode(e), local_env];
        Ok(rustler::types::tuple::make_tuple(e, &fields))
    })
}

rustler::atoms! { py_thread_callback }

/// The resolver thread's queue, started with the first future.
fn resolver() -> &'static Sender<(PendingFuture, Outcome)> {
    static RESOLVER: OnceLock<Sender<(PendingFuture, Outcome)>> = OnceLock::new();
    RESOLVER.get_or_init(|| {
        let (tx, rx) = crossbeam_channel::unbounded::<(PendingFuture, Outcome)>();
        std::thread::Builder::new()
            .name("py-async-resolver".into())
            .spawn(move || {
                for (pending, outcome) in rx {
                    resolve(pending, outcome);
                }
            })
            .expect("cannot start the erlang.async_call resolver thread");
        tx
    })
}

/// Convert an answer and hand it to its future's loop, which sets it unless the future
/// was cancelled meanwhile (`erlang_shim._resolve_future`).
fn resolve(pending: PendingFuture, outcome: Outcome) {
    let PendingFuture { event_loop, future } = pending;
    Python::attach(|py| {
        let result = match outcome {
            Outcome::Answered(answer) => answer.with(|_, term| answer_to_py(py, term)),
            Outcome::Gone => Err(interp_kit::error(py, Class::ProcessError, GONE)),
        };
        let (error, value) = match result {
            Ok(value) => (py.None(), value),
            Err(err) => (err.into_value(py).into_any(), py.None()),
        };
        let handed = py
            .import("erlang_shim")
            .and_then(|shim| shim.getattr("_resolve_future"))
            .and_then(|resolve| event_loop.bind(py).call_method1("call_soon_threadsafe", (resolve, future.bind(py), error, value)));
        // A loop closed meanwhile has nobody left to tell.
        drop(handed);
        drop((event_loop, future));
    });
}

/// One Erlang call made from a Python thread that is not a context's, or from an asyncio
/// loop other than a context's own: the runner process answers through it
/// (`py_nif:callback_reply/3`) rather than through a context's mailbox. It watches the
/// dispatcher until a runner is spawned, then the runner, so that the caller always gets
/// an outcome: the answer, or `Gone` when the process that should answer exits first.
pub struct ThreadCallRes {
    sink: std::sync::Mutex<Option<Sink>>,
    /// Monitor of the dispatcher, replaced by one of the runner once it is spawned.
    pub dispatcher_watch: std::sync::Mutex<Option<rustler::Monitor>>,
}

impl ThreadCallRes {
    pub fn new(sink: Sink) -> ThreadCallRes {
        ThreadCallRes { sink: std::sync::Mutex::new(Some(sink)), dispatcher_watch: std::sync::Mutex::new(None) }
    }

    /// Hand over the outcome; the first one wins, later ones are dropped.
    pub fn deliver(&self, outcome: Outcome) {
        let sink = self.sink.lock().unwrap().take();
        if let Some(sink) = sink {
            sink.deliver(outcome);
        }
    }

    /// The call was never sent: nobody must be told anything.
    pub fn disarm(&self) {
        drop(self.sink.lock().unwrap().take());
    }
}

#[rustler::resource_impl]
impl rustler::Resource for ThreadCallRes {
    fn down<'a>(&'a self, _env: rustler::Env<'a>, _pid: rustler::LocalPid, _mon: rustler::Monitor) {
        self.deliver(Outcome::Gone);
    }
}

impl Drop for ThreadCallRes {
    /// A call whose handle is released unanswered (a runner that never replied and whose
    /// monitor could not be set) still ends its caller's wait.
    fn drop(&mut self) {
        self.deliver(Outcome::Gone);
    }
}

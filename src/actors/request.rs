//! What travels through a context's mailbox.

use crate::actors::ContextShared;
use crate::msg_env::{MsgEnv, RawTerm};
use crate::resources::EnvRes;
use rustler::ResourceArc;
use pyo3::{Py, PyAny};
use crate::atoms;
use rustler::{Encoder, LocalPid, Term};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PENDING: u8 = 0;
const REPLIED: u8 = 1;
const CANCELLED: u8 = 2;
/// The caller still runs its submit NIF, polling for the reply (see `spin_for_reply`).
const SPINNING: u8 = 3;
/// The reply waits in `ReqState::slot` for the polling caller; no message is sent.
const STORED: u8 = 4;

static NEXT_REQUEST_ID: AtomicU64 = AtomicU64::new(1);

/// Who wins between the actor's reply and the caller's timeout: exactly one of
/// `try_reply`, `store_reply` and `try_cancel` succeeds, so a cancelled request never
/// sends, and a stored reply is never sent as well.
pub struct ReqState {
    pub id: u64,
    status: AtomicU8,
    pub ctx: Arc<ContextShared>,
    /// A reply handed over without a message: the request's environment and the result.
    slot: Mutex<Option<(MsgEnv, RawTerm)>>,
    /// Held by `try_cancel` and by a callback message's send, so that a message to the
    /// caller is either sent before the cancel returns or not at all.
    send_gate: Mutex<()>,
}

impl ReqState {
    /// `spinning`: the caller polls for the reply before it waits in `receive`.
    pub fn new(ctx: Arc<ContextShared>, spinning: bool) -> ReqState {
        ReqState {
            id: NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed),
            status: AtomicU8::new(if spinning { SPINNING } else { PENDING }),
            ctx,
            slot: Mutex::new(None),
            send_gate: Mutex::new(()),
        }
    }

    /// Claim the right to send the reply as a message.
    pub fn try_reply(&self) -> bool {
        self.transition(REPLIED)
    }

    /// The caller gives up. Once this returns, no callback message for the request is
    /// sent any more: one being sent finishes first (see `send_unless_cancelled`).
    pub fn try_cancel(&self) -> bool {
        let _gate = self.send_gate.lock().unwrap_or_else(|e| e.into_inner());
        self.transition(CANCELLED)
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
        self.status.load(Ordering::Acquire) == CANCELLED
    }

    pub fn is_spinning(&self) -> bool {
        self.status.load(Ordering::Acquire) == SPINNING
    }

    /// Make a polling caller go to `receive`: messages for it are about to be sent.
    pub fn stop_spinning(&self) {
        let _ = self.status.compare_exchange(SPINNING, PENDING, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Hand the result to the polling caller. Gives the environment back when the caller
    /// stopped polling meanwhile: the reply must then go as a message.
    pub fn store_reply(&self, env: MsgEnv, result: RawTerm) -> Result<(), MsgEnv> {
        *self.slot.lock().unwrap() = Some((env, result));
        match self.status.compare_exchange(SPINNING, STORED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Ok(()),
            Err(_) => Err(self.slot.lock().unwrap().take().expect("slot just filled").0),
        }
    }

    /// Caller side: poll for a stored reply for at most `budget`. `None` when the reply
    /// will come as a message instead (the budget ran out, or the actor asked for it).
    pub fn spin_for_reply(&self, budget: Duration) -> Option<(MsgEnv, RawTerm)> {
        let start = Instant::now();
        loop {
            for _ in 0..64 {
                match self.status.load(Ordering::Acquire) {
                    SPINNING => std::hint::spin_loop(),
                    STORED => return self.slot.lock().unwrap().take(),
                    _ => return None,
                }
            }
            if start.elapsed() >= budget {
                return match self.status.compare_exchange(SPINNING, PENDING, Ordering::AcqRel, Ordering::Acquire) {
                    Err(STORED) => self.slot.lock().unwrap().take(),
                    _ => None,
                };
            }
        }
    }

    /// From pending, or from spinning (a caller that still polls then sees the change and
    /// goes to `receive`).
    fn transition(&self, to: u8) -> bool {
        let mut from = self.status.load(Ordering::Acquire);
        while from == PENDING || from == SPINNING {
            match self.status.compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(now) => from = now,
            }
        }
        false
    }
}

/// One request: a copied `{Kind, Ref, ...}` tuple in its own environment, which
/// later carries the reply too.
pub struct Request {
    pub env: MsgEnv,
    pub body: RawTerm,
    /// The caller's process-bound namespace (`None`: the context's shared namespace).
    pub local_env: Option<ResourceArc<EnvRes>>,
    pub caller: LocalPid,
    /// `None` for fire-and-forget requests.
    pub reply: Option<Arc<ReqState>>,
    /// The caller waits in `receive` for the reply and runs Erlang functions that this
    /// request's Python code calls (`erlang.call`); otherwise they run in a new process.
    pub caller_waits: bool,
}

impl Request {
    pub fn env_id(&self) -> u64 {
        self.local_env.as_ref().map_or(0, |e| e.env_id)
    }

    /// Give up the right to answer on drop: for a request refused in a NIF, whose caller
    /// gets the refusal as the NIF's result (and where `enif_send` needs the caller's env).
    pub fn disarm(&mut self) {
        self.reply = None;
    }
}

impl Drop for Request {
    /// A request nobody answered (a context that stopped and dropped its mailbox with the
    /// request still in it) answers `{error, context_stopped}` or the crash: a caller is
    /// never left waiting for its timeout. Requests are only dropped armed off the BEAM's
    /// schedulers (NIFs disarm what they refuse), so the NULL-env send is allowed.
    fn drop(&mut self) {
        let Some(state) = self.reply.take() else { return };
        if !state.try_reply() {
            return;
        }
        let body = self.body;
        let why = match state.ctx.status.load(Ordering::Acquire) {
            crate::actors::CRASHED => Some(state.ctx.crash_reason()),
            _ => None,
        };
        let msg = self.env.with(|env| {
            // SAFETY: `body` is a term of `self.env`, which was never cleared: nothing was
            // sent from it (the reply state was still unclaimed).
            let tag = rustler::types::tuple::get_tuple(unsafe { Term::new(env, body) }).ok()?.get(1).copied()?;
            let reason = match &why {
                Some(why) => (atoms::context_crashed(), why.as_str()).encode(env),
                None => atoms::context_stopped().encode(env),
            };
            Some((atoms::py_reply(), tag, (atoms::error(), reason)).encode(env).as_c_arg())
        });
        if let Some(msg) = msg {
            self.env.send_and_clear(&self.caller, msg);
        }
    }
}

/// What an Erlang function called from Python answered: `{ok, V}` or `{error, R, Text}`
/// in its own environment, or nothing when the wait was abandoned.
pub enum CallbackOutcome {
    Answered(MsgEnv, RawTerm),
    /// The waiting request was cancelled or its caller died.
    Abandoned,
}

pub enum Msg {
    Run(Request),
    /// The Erlang side lost its last handle to a process-bound namespace.
    DropEnv(u64),
    /// A py ref was garbage collected; the object must be released under the GIL.
    DropObject(Py<PyAny>),
    /// The answer of an Erlang function that Python code called.
    CallbackReply(u64, MsgEnv, RawTerm),
    /// Stop waiting for callback `id`: the Erlang process running it died.
    CallbackAbort(u64),
    /// Process `pid` runs the Erlang function of callback `id` on behalf of its caller.
    JoinChain(u64, LocalPid),
    /// The caller gave up on request `id`: cancel its task or stream, and re-check waits.
    Cancelled(u64),
    /// The stream of request `id` may send `n` more items.
    Credit(u64, usize),
    Stop,
    /// Test hook: make the actor panic, to exercise crash handling.
    Panic,
}

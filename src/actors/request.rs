//! What travels through a context's mailbox.

use crate::actors::ContextShared;
use crate::msg_env::{MsgEnv, RawTerm};
use crate::resources::EnvRes;
use rustler::ResourceArc;
use pyo3::{Py, PyAny};
use rustler::LocalPid;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

const PENDING: u8 = 0;
const REPLIED: u8 = 1;
const CANCELLED: u8 = 2;

static NEXT_REQUEST_ID: AtomicU64 = AtomicU64::new(1);

/// Who wins between the actor's reply and the caller's timeout: exactly one of
/// `try_reply` and `try_cancel` succeeds, so a cancelled request never sends.
pub struct ReqState {
    pub id: u64,
    status: AtomicU8,
    pub ctx: Arc<ContextShared>,
}

impl ReqState {
    pub fn new(ctx: Arc<ContextShared>) -> ReqState {
        ReqState {
            id: NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed),
            status: AtomicU8::new(PENDING),
            ctx,
        }
    }

    pub fn try_reply(&self) -> bool {
        self.transition(REPLIED)
    }

    pub fn try_cancel(&self) -> bool {
        self.transition(CANCELLED)
    }

    pub fn is_cancelled(&self) -> bool {
        self.status.load(Ordering::Acquire) == CANCELLED
    }

    fn transition(&self, to: u8) -> bool {
        self.status
            .compare_exchange(PENDING, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
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

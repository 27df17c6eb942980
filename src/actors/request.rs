//! What travels through a context's mailbox.

use crate::actors::ContextShared;
use crate::msg_env::{MsgEnv, RawTerm};
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
    /// Process-bound namespace id (0: the context's shared namespace).
    pub env_id: u64,
    pub caller: LocalPid,
    /// `None` for fire-and-forget requests.
    pub reply: Option<Arc<ReqState>>,
}

pub enum Msg {
    Run(Request),
    /// The Erlang side lost its last handle to a process-bound namespace.
    DropEnv(u64),
    /// A py ref was garbage collected; the object must be released under the GIL.
    DropObject(Py<PyAny>),
    Stop,
    /// Test hook: make the actor panic, to exercise crash handling.
    Panic,
}

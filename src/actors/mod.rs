//! The actor runtime: each context is one OS thread owning a Python thread state, its
//! namespaces and its asyncio loop. Requests reach it through an unbounded channel whose
//! length is bounded by an atomic counter, so control messages (drops, stop) are never
//! refused while requests are.

pub mod aio;
pub mod callback;
pub mod context;
pub mod request;

use crossbeam_channel::Sender;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub use request::{Msg, ReqState, Request};

pub const RUNNING: u8 = 0;
pub const STOPPED: u8 = 1;
pub const CRASHED: u8 = 2;

static NEXT_CONTEXT_ID: AtomicU64 = AtomicU64::new(1);

/// State of one context that NIFs, the interrupter and the actor all read.
pub struct ContextShared {
    /// Unique per actor instance (a restarted context gets a new one).
    pub id: u64,
    pub max_queued: usize,
    pub queued: AtomicUsize,
    /// Id of the request whose Python code runs now (0: none). Written with the GIL held.
    pub running_req: AtomicU64,
    /// `threading.get_ident()` of the actor thread, for `PyThreadState_SetAsyncExc`.
    pub thread_ident: AtomicU64,
    pub status: AtomicU8,
    pub crash_reason: Mutex<Option<String>>,
    /// The actor waits in its event loop's selector (not on the channel).
    pub in_selector: AtomicBool,
    /// eventfd the selector watches; written to wake it.
    pub wake_fd: AtomicI32,
}

pub enum SubmitError {
    Overloaded(usize, usize),
    Stopped,
    Crashed(String),
}

/// The sending side of a context's mailbox, held by NIF resources.
#[derive(Clone)]
pub struct Mailbox {
    pub shared: Arc<ContextShared>,
    tx: Sender<Msg>,
}

impl Mailbox {
    /// Queue a request, refusing it at once when the context is full or gone.
    pub fn submit(&self, req: Request) -> Result<(), SubmitError> {
        self.check_alive()?;
        let max = self.shared.max_queued;
        let before = self.shared.queued.fetch_add(1, Ordering::AcqRel);
        if before >= max {
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(SubmitError::Overloaded(before, max));
        }
        self.tx.send(Msg::Run(req)).map_err(|_| {
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            SubmitError::Stopped
        })?;
        self.wake();
        Ok(())
    }

    /// Queue a control message; these are never refused for load.
    pub fn control(&self, msg: Msg) {
        let _ = self.tx.send(msg);
        self.wake();
    }

    /// If the actor sleeps in its event loop's selector, wake it (it re-checks the
    /// channel after announcing `in_selector`, so one side always sees the other).
    fn wake(&self) {
        // Pairs with the fence in `Actor::run_loop_once`: either the actor sees the message
        // we just queued, or we see that it sleeps in the selector.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.shared.in_selector.load(Ordering::SeqCst) {
            let fd = self.shared.wake_fd.load(Ordering::Acquire);
            if fd >= 0 {
                let one: u64 = 1;
                unsafe { libc::write(fd, &one as *const u64 as *const libc::c_void, 8) };
            }
        }
    }

    fn check_alive(&self) -> Result<(), SubmitError> {
        match self.shared.status.load(Ordering::Acquire) {
            RUNNING => Ok(()),
            CRASHED => Err(SubmitError::Crashed(self.shared.crash_reason())),
            _ => Err(SubmitError::Stopped),
        }
    }
}

impl ContextShared {
    pub fn crash_reason(&self) -> String {
        self.crash_reason
            .lock()
            .map(|r| r.clone().unwrap_or_default())
            .unwrap_or_default()
    }
}

pub fn next_context_id() -> u64 {
    NEXT_CONTEXT_ID.fetch_add(1, Ordering::Relaxed)
}

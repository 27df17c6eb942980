//! What NIFs and context actors share: a context's mailbox and state flags, the typed
//! requests that travel through it, the Erlang-visible handles, and the queue of
//! interruptions. Requests reach a context through an unbounded channel whose length is
//! bounded by an atomic counter, so control messages (drops, stop) are never refused while
//! requests are. Nothing here runs Python or depends on the actors (`crate::actors`).

pub mod handles;
pub mod interrupts;
pub mod observed;
pub mod orphans;
pub mod quick_reply;
pub mod request;

use crossbeam_channel::Sender;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub use quick_reply::{reply_spin, set_reply_spin, SpinPolicy};
pub use request::{Msg, ReqState, Request};

pub const RUNNING: u8 = 0;
pub const STOPPED: u8 = 1;
pub const CRASHED: u8 = 2;

/// `running_req` while the event loop runs: the running request is the current task's.
pub const IN_LOOP: u64 = u64::MAX;

static NEXT_CONTEXT_ID: AtomicU64 = AtomicU64::new(1);

/// State of one context that NIFs, the interrupter and the actor all read.
pub struct ContextShared {
    /// Unique per actor instance (a restarted context gets a new one).
    pub id: u64,
    pub max_queued: usize,
    pub queued: AtomicUsize,
    /// Id of the request whose Python code runs now (0: none; `IN_LOOP`: the event loop
    /// runs, and the request is the one owning the current task). Written with the GIL held.
    pub running_req: AtomicU64,
    /// The interrupter raised `Interrupted` in the actor thread and it may not have fired.
    pub interrupt_armed: AtomicBool,
    /// The context's event loop, for the interrupter to find the task running now.
    /// Only touched with the GIL held; taken out when the actor leaves.
    pub event_loop: Mutex<Option<pyo3::Py<pyo3::PyAny>>>,
    /// NIFs writing to `wake_fd` right now (see `Mailbox::wake` and `close_wake_fd`).
    pub wake_writers: AtomicUsize,
    /// `threading.get_ident()` of the actor thread, for `PyThreadState_SetAsyncExc`.
    pub thread_ident: AtomicU64,
    pub status: AtomicU8,
    pub crash_reason: Mutex<Option<String>>,
    /// The actor waits in its event loop's selector (not on the channel).
    pub in_selector: AtomicBool,
    /// eventfd the selector watches; written to wake it.
    pub wake_fd: AtomicI32,
    /// Who may poll for a quick reply, and when (see `quick_reply`).
    pub quick_reply: SpinPolicy,
    /// Set for a context in a sub-interpreter of its own: its interrupt watcher, which
    /// acts in that interpreter (the shared interrupter serves the main one).
    pub own_interrupter: std::sync::OnceLock<Sender<u64>>,
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
    /// A new mailbox for a context with this shared state, and the actor's receiving end.
    pub fn open(shared: Arc<ContextShared>) -> (Mailbox, crossbeam_channel::Receiver<Msg>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (Mailbox { shared, tx }, rx)
    }

    /// Queue a request, refusing it at once when the context is full or gone. A refused
    /// request is disarmed: its caller gets the refusal as the result, not a message.
    pub fn submit(&self, req: Request) -> Result<(), SubmitError> {
        if let Err(e) = self.check_alive() {
            req.disarm();
            return Err(e);
        }
        let max = self.shared.max_queued;
        let before = self.shared.queued.fetch_add(1, Ordering::AcqRel);
        if before >= max {
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            req.disarm();
            return Err(SubmitError::Overloaded(before, max));
        }
        if let Err(crossbeam_channel::SendError(msg)) = self.tx.send(Msg::Run(req)) {
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            if let Msg::Run(req) = msg {
                req.disarm();
            }
            // The actor left after we checked: report what it left as.
            return Err(self.check_alive().err().unwrap_or(SubmitError::Stopped));
        }
        self.wake();
        Ok(())
    }

    /// Queue a control message; these are never refused for load.
    pub fn control(&self, msg: Msg) {
        let _ = self.tx.send(msg);
        self.wake();
    }

    /// Queue a control message; when the context's thread is gone, the message comes back.
    pub fn control_or_back(&self, msg: Msg) -> Option<Msg> {
        if let Err(unsent) = self.tx.send(msg) {
            return Some(unsent.0);
        }
        self.wake();
        None
    }

    /// If the actor sleeps in its event loop's selector, wake it (it re-checks the
    /// channel after announcing `in_selector`, so one side always sees the other).
    fn wake(&self) {
        // Pairs with the fence in `Actor::run_loop_once`: either the actor sees the message
        // we just queued, or we see that it sleeps in the selector.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.shared.in_selector.load(Ordering::SeqCst) {
            // Announce the write before reading the fd: `close_wake_fd` takes the fd away
            // first and then waits for announced writers, so the number we write to is
            // still our eventfd, never a reused descriptor.
            self.shared.wake_writers.fetch_add(1, Ordering::SeqCst);
            let fd = self.shared.wake_fd.load(Ordering::SeqCst);
            if fd >= 0 {
                let one: u64 = 1;
                // SAFETY: `fd` stays open until `wake_writers` drops back (see
                // `close_wake_fd`), and the buffer is 8 valid bytes, as an eventfd wants.
                unsafe { libc::write(fd, &one as *const u64 as *const libc::c_void, 8) };
            }
            self.shared.wake_writers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Become this context's polling caller (see `SpinPolicy::claim`).
    pub fn claim_spinner(&self) -> bool {
        let queued = self.shared.queued.load(Ordering::Acquire);
        self.shared.quick_reply.claim(reply_spin(), queued)
    }

    fn check_alive(&self) -> Result<(), SubmitError> {
        match self.shared.status.load(Ordering::Acquire) {
            RUNNING => Ok(()),
            CRASHED => Err(SubmitError::Crashed(self.shared.crash_reason())),
            _ => Err(SubmitError::Stopped),
        }
    }
}

impl Drop for ContextShared {
    fn drop(&mut self) {
        self.close_wake_fd();
    }
}

impl ContextShared {
    /// Close the wake-up eventfd once no NIF can be writing to it (idempotent). The actor
    /// calls it when it leaves, so a stopped context keeps no descriptor open.
    pub fn close_wake_fd(&self) {
        let fd = self.wake_fd.swap(-1, Ordering::SeqCst);
        if fd < 0 {
            return;
        }
        // A writer that announced itself may hold the old number; it finishes in a few
        // instructions (the eventfd is non-blocking).
        while self.wake_writers.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
        // SAFETY: `fd` is the eventfd this context opened; the swap above made it
        // unreachable for new writers and the loop waited out the ones already writing.
        unsafe { libc::close(fd) };
    }

    /// Remember that an `Interrupted` may be pending on the actor thread.
    pub fn arm_interrupt(&self) {
        self.interrupt_armed.store(true, Ordering::Release);
    }

    /// Whether an `Interrupted` may still be pending; clears the mark.
    pub fn take_interrupt_mark(&self) -> bool {
        self.interrupt_armed.swap(false, Ordering::AcqRel)
    }

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

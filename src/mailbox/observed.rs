//! What the caller side needs for its `telemetry` events and cannot see itself: how long a
//! request waited in its context's mailbox, and how many items a stream sent. Only a
//! request that `py_request` wrapped as `{observed, Request}` (which it does only while
//! the `telemetry` module is loaded) carries an `Observed`; every other request pays
//! nothing beyond a `None`.
//!
//! Such a request's reply is `{observed, QueueWaitNs | undefined, Result}` (`undefined`:
//! it never ran, e.g. the context stopped first), on the quick-reply path and as a
//! message alike, and an observed stream's note to its controller is
//! `{py_stream_finished, Ref, Items, EndEvent}` instead of `{py_stream_finished, Ref}`.

use rustler::{Encoder, Env, Term};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

rustler::atoms! { observed }

/// `waited_ns` before the context started the request.
const NOT_STARTED: u64 = u64::MAX;

pub struct Observed {
    submitted: Instant,
    waited_ns: AtomicU64,
    items: AtomicU64,
}

impl Observed {
    /// Made in the submitting NIF, so the wait counts from the submission.
    pub fn new() -> Observed {
        Observed { submitted: Instant::now(), waited_ns: AtomicU64::new(NOT_STARTED), items: AtomicU64::new(0) }
    }

    /// The context starts running the request. A request put aside by the nesting policy
    /// is started once, when it finally runs, so its wait includes the time aside.
    pub fn mark_started(&self) {
        let waited = u64::try_from(self.submitted.elapsed().as_nanos()).unwrap_or(NOT_STARTED - 1);
        let _ = self.waited_ns.compare_exchange(NOT_STARTED, waited, Ordering::Relaxed, Ordering::Relaxed);
    }

    pub fn count_item(&self) {
        self.items.fetch_add(1, Ordering::Relaxed);
    }

    pub fn items(&self) -> u64 {
        self.items.load(Ordering::Relaxed)
    }

    /// `{observed, QueueWaitNs | undefined, Result}`.
    pub fn wrap_reply<'a>(&self, env: Env<'a>, result: Term<'a>) -> Term<'a> {
        match self.waited_ns.load(Ordering::Relaxed) {
            NOT_STARTED => (observed(), crate::atoms::undefined(), result).encode(env),
            waited => (observed(), waited, result).encode(env),
        }
    }

    /// The inner request of `{observed, Request}`, or `None` for any other term.
    pub fn unwrap_request<'a>(request: Term<'a>) -> Option<Term<'a>> {
        match rustler::types::tuple::get_tuple(request).ok()?.as_slice() {
            [tag, inner] if tag.decode::<rustler::Atom>().ok() == Some(observed()) => Some(*inner),
            _ => None,
        }
    }
}

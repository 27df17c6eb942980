//! The quick-reply handoff (erlang_python's NIF crate re-exports it as
//! `actors::quick_reply`): a caller that waits for its reply may poll for it inside its
//! submit NIF for a short budget, and take the result without a message.
//!
//! Two parts, both free of NIF calls so that they are unit-tested with plain threads:
//! - `Handoff`: the per-request state machine deciding who wins between the actor's
//!   reply (sent as a message, or stored for the polling caller) and the caller's cancel.
//! - `SpinPolicy`: the per-context choice of whether a caller may poll at all (one poller
//!   at a time, only on an idle context, backing off when polls keep missing).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const PENDING: u8 = 0;
const REPLIED: u8 = 1;
const CANCELLED: u8 = 2;
/// The caller still runs its submit NIF, polling for the reply (see `Handoff::spin_for`).
const SPINNING: u8 = 3;
/// The reply waits in the slot for the polling caller; no message is sent.
const STORED: u8 = 4;

/// How one request ends, decided once: exactly one of `try_reply`, `store` and
/// `try_cancel` succeeds, so a cancelled request never answers, a stored reply is never
/// sent as a message as well, and a stored reply is taken exactly once.
pub struct Handoff<P> {
    status: AtomicU8,
    /// A stored reply, until the polling caller takes it.
    slot: Mutex<Option<P>>,
}

impl<P> Handoff<P> {
    /// `spinning`: the caller polls for the reply before it waits in `receive`.
    pub fn new(spinning: bool) -> Handoff<P> {
        Handoff { status: AtomicU8::new(if spinning { SPINNING } else { PENDING }), slot: Mutex::new(None) }
    }

    /// Claim the right to answer with a message.
    pub fn try_reply(&self) -> bool {
        self.transition(REPLIED)
    }

    /// The caller gives up: nothing will be answered once this returns `true`.
    pub fn try_cancel(&self) -> bool {
        self.transition(CANCELLED)
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

    /// Hand the reply to the polling caller. Gives it back when the caller is no longer
    /// polling (it ran out of budget, or was told to stop): it must then go as a message.
    pub fn store(&self, payload: P) -> Result<(), P> {
        let mut slot = self.lock_slot();
        // The slot is filled under its lock before the state says STORED, so the caller
        // that sees STORED always finds it full.
        match self.status.compare_exchange(SPINNING, STORED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                *slot = Some(payload);
                Ok(())
            }
            Err(_) => Err(payload),
        }
    }

    /// Caller side: poll for a stored reply for at most `budget`. `None` when the reply
    /// will come as a message instead (the budget ran out, or the actor asked for it).
    pub fn spin_for(&self, budget: Duration) -> Option<P> {
        let start = Instant::now();
        loop {
            for _ in 0..64 {
                match self.status.load(Ordering::Acquire) {
                    SPINNING => std::hint::spin_loop(),
                    STORED => return self.lock_slot().take(),
                    _ => return None,
                }
            }
            if start.elapsed() >= budget {
                return match self.status.compare_exchange(SPINNING, PENDING, Ordering::AcqRel, Ordering::Acquire) {
                    Err(STORED) => self.lock_slot().take(),
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

    fn lock_slot(&self) -> std::sync::MutexGuard<'_, Option<P>> {
        // A panic while holding the lock leaves the slot as it was: still usable.
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How long a caller may poll for a quick reply before waiting in `receive` (ns; 0: never).
static REPLY_SPIN_NS: AtomicU64 = AtomicU64::new(DEFAULT_REPLY_SPIN_NS);
const DEFAULT_REPLY_SPIN_NS: u64 = 50_000;
/// Polls skipped after `n` misses in a row: 2^n, at most this many.
const MAX_SKIP: u32 = 64;

/// Set the polling budget (`reply_spin_us`). One CPU cannot run the caller's poll and the
/// context at once, so there polling is off by default.
pub fn set_reply_spin(us: Option<u64>) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ns = match us {
        Some(us) => us.saturating_mul(1000),
        None if cpus > 1 => DEFAULT_REPLY_SPIN_NS,
        None => 0,
    };
    REPLY_SPIN_NS.store(ns, Ordering::Relaxed);
}

#[inline]
pub fn reply_spin() -> Duration {
    Duration::from_nanos(REPLY_SPIN_NS.load(Ordering::Relaxed))
}

/// Per context: who may poll, and when polling is worth it.
#[derive(Default)]
pub struct SpinPolicy {
    /// A caller polls for its reply in its submit NIF (at most one per context).
    spinner: AtomicBool,
    /// The actor waits for work at the top level: nothing runs, not even loop tasks.
    idle: AtomicBool,
    /// Polls that ran out of budget in a row, and how many calls skip polling now: a
    /// context busy with slow functions stops costing each caller a wasted poll.
    misses: AtomicU32,
    skip: AtomicU32,
}

impl SpinPolicy {
    /// Become the context's polling caller: only with a budget, when the context is idle
    /// and nothing is queued (`queued`), so the reply is likely to come within the
    /// budget; one caller at a time.
    #[inline]
    pub fn claim(&self, budget: Duration, queued: usize) -> bool {
        // Never below zero, whatever other callers do meanwhile.
        let skipped = self.skip.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        if skipped.is_ok() {
            return false;
        }
        budget > Duration::ZERO
            && queued == 0
            && self.idle.load(Ordering::Acquire)
            && self.spinner.compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed).is_ok()
    }

    /// `answered`: the reply came within the budget. Misses in a row make the following
    /// calls skip polling, 2, 4, ... up to 64 of them.
    #[inline]
    pub fn release(&self, answered: bool) {
        if answered {
            self.misses.store(0, Ordering::Relaxed);
        } else {
            let misses = self.misses.fetch_add(1, Ordering::Relaxed).saturating_add(1);
            self.skip.store(1 << misses.min(MAX_SKIP.trailing_zeros()), Ordering::Relaxed);
        }
        self.abandon();
    }

    /// Give up the polling role without a verdict (the request was not queued).
    #[inline]
    pub fn abandon(&self) {
        self.spinner.store(false, Ordering::Release);
    }

    /// The actor waits for work at the top level: a caller's poll is likely to pay off.
    #[inline]
    pub fn mark_idle(&self) {
        self.idle.store(true, Ordering::Release);
    }

    /// The actor runs something (a request, the event loop): a poll would likely miss.
    #[inline]
    pub fn mark_busy(&self) {
        self.idle.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::{Arc, Barrier};
    use std::thread;

    const LONG: Duration = Duration::from_secs(5);

    #[test]
    fn stored_reply_reaches_the_poller_once() {
        let handoff = Arc::new(Handoff::new(true));
        let actor = {
            let handoff = handoff.clone();
            thread::spawn(move || handoff.store(7u32).is_ok())
        };
        assert_eq!(handoff.spin_for(LONG), Some(7));
        assert!(actor.join().unwrap());
        // Taken: nothing is left for a second take, nor may anyone answer again.
        assert_eq!(handoff.spin_for(Duration::ZERO), None);
        assert!(!handoff.try_reply());
        assert!(!handoff.try_cancel());
    }

    #[test]
    fn a_poll_that_runs_out_of_budget_makes_the_store_fail() {
        let handoff = Handoff::new(true);
        assert_eq!(handoff.spin_for(Duration::from_micros(10)), None);
        assert!(!handoff.is_spinning());
        assert_eq!(handoff.store(1u32), Err(1));
        // The reply then goes as a message.
        assert!(handoff.try_reply());
    }

    #[test]
    fn stop_spinning_sends_the_poller_to_receive() {
        let handoff = Arc::new(Handoff::<u32>::new(true));
        let poller = {
            let handoff = handoff.clone();
            thread::spawn(move || handoff.spin_for(LONG))
        };
        handoff.stop_spinning();
        assert_eq!(poller.join().unwrap(), None);
        assert_eq!(handoff.store(3), Err(3));
        assert!(handoff.try_reply());
    }

    #[test]
    fn a_request_nobody_polls_for_is_never_stored() {
        let handoff = Handoff::new(false);
        assert!(!handoff.is_spinning());
        assert_eq!(handoff.store(5u32), Err(5));
        assert!(handoff.try_cancel());
        assert!(handoff.is_cancelled());
        assert!(!handoff.try_reply());
    }

    /// Reply, store, cancel and the poller's budget all race; exactly one of reply, store
    /// and cancel wins, and a stored reply is taken by the poller exactly once.
    #[test]
    fn reply_store_cancel_and_budget_race() {
        const ROUNDS: usize = 2000;
        let outcomes = [(); 4].map(|_| AtomicUsize::new(0));
        for round in 0..ROUNDS {
            let handoff = Arc::new(Handoff::new(true));
            let barrier = Arc::new(Barrier::new(4));
            let budget = Duration::from_nanos((round % 7) as u64 * 300);
            type Step = Box<dyn FnOnce(&Handoff<usize>) -> bool + Send>;
            let spawn = |f: Step| {
                let (handoff, barrier) = (handoff.clone(), barrier.clone());
                thread::spawn(move || {
                    barrier.wait();
                    f(&handoff)
                })
            };
            let storer = spawn(Box::new(move |h| h.store(round).is_ok()));
            let replier = spawn(Box::new(|h| h.try_reply()));
            let canceller = spawn(Box::new(|h| h.try_cancel()));
            let poller = {
                let (handoff, barrier) = (handoff.clone(), barrier.clone());
                thread::spawn(move || {
                    barrier.wait();
                    handoff.spin_for(budget)
                })
            };
            let stored = storer.join().unwrap();
            let replied = replier.join().unwrap();
            let cancelled = canceller.join().unwrap();
            let taken = poller.join().unwrap();
            assert_eq!(stored as u8 + replied as u8 + cancelled as u8, 1, "round {round}");
            assert_eq!(taken.is_some(), stored, "round {round}: a stored reply is taken, nothing else is");
            if let Some(value) = taken {
                assert_eq!(value, round);
            }
            assert_eq!(handoff.spin_for(Duration::ZERO), None, "round {round}: taken twice");
            let winner = [stored, replied, cancelled].iter().position(|w| *w).unwrap();
            outcomes[winner].fetch_add(1, Ordering::Relaxed);
            if taken.is_none() && stored {
                outcomes[3].fetch_add(1, Ordering::Relaxed);
            }
        }
        assert_eq!(outcomes[3].load(Ordering::Relaxed), 0);
        assert_eq!(outcomes[..3].iter().map(|o| o.load(Ordering::Relaxed)).sum::<usize>(), ROUNDS);
    }

    /// Many callers race for the polling role: at most one holds it at a time.
    #[test]
    fn one_spinner_at_a_time() {
        let policy = Arc::new(SpinPolicy::default());
        policy.mark_idle();
        let holders = Arc::new(AtomicUsize::new(0));
        let claims = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (policy, holders, claims) = (policy.clone(), holders.clone(), claims.clone());
                thread::spawn(move || {
                    for _ in 0..2000 {
                        if policy.claim(Duration::from_micros(1), 0) {
                            assert_eq!(holders.fetch_add(1, Ordering::SeqCst), 0, "two spinners");
                            claims.fetch_add(1, Ordering::Relaxed);
                            holders.fetch_sub(1, Ordering::SeqCst);
                            policy.release(true);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(claims.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn no_claim_unless_idle_unqueued_and_budgeted() {
        let policy = SpinPolicy::default();
        assert!(!policy.claim(Duration::from_micros(50), 0), "busy");
        policy.mark_idle();
        assert!(!policy.claim(Duration::from_micros(50), 1), "queued");
        assert!(!policy.claim(Duration::ZERO, 0), "no budget");
        assert!(policy.claim(Duration::from_micros(50), 0));
        assert!(!policy.claim(Duration::from_micros(50), 0), "held");
        policy.abandon();
        policy.mark_busy();
        assert!(!policy.claim(Duration::from_micros(50), 0), "busy again");
    }

    /// After the n-th miss in a row, the next 2^n (at most 64) claims are refused; a hit
    /// resets the count.
    #[test]
    fn misses_back_off_2_4_up_to_64() {
        let policy = SpinPolicy::default();
        policy.mark_idle();
        let budget = Duration::from_micros(50);
        let mut skipped_runs = Vec::new();
        for _ in 0..8 {
            assert!(policy.claim(budget, 0));
            policy.release(false);
            let mut skipped = 0;
            while !policy.claim(budget, 0) {
                skipped += 1;
                assert!(skipped <= 64, "never claims again");
            }
            policy.abandon();
            skipped_runs.push(skipped);
        }
        assert_eq!(skipped_runs, [2, 4, 8, 16, 32, 64, 64, 64]);
        // A hit resets the back-off: the next miss skips 2 again.
        assert!(policy.claim(budget, 0));
        policy.release(true);
        assert!(policy.claim(budget, 0));
        policy.release(false);
        let skipped = (0..100).take_while(|_| !policy.claim(budget, 0)).count();
        assert_eq!(skipped, 2);
    }
}

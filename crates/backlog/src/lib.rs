//! A bound on what waits in one process's mailbox, kept by its senders (erlang_python's
//! NIF crate uses it for the output handler, `output.rs`).
//!
//! An Erlang process cannot refuse messages, and code that checks its own queue length
//! only runs once the queue has already grown. So the senders count: every message adds
//! its cost to the backlog until the receiver says it took it (`Backlog::taken`), and a
//! message that would take the backlog past its limit is dropped and counted instead.
//! The receiver hears of drops by one notice at a time (`Admit::DroppedFirst`): the next
//! notice only after it collected the counts (`Backlog::take_drops`).

/// What a message carries, for counting it when it is dropped.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Payload {
    /// Text a program wrote to stdout or stderr.
    Output,
    /// A log record, a traceback or a warning.
    Record,
    /// A request to send held text now: dropping it only delays that text.
    Flush,
}

/// Messages dropped since the receiver last collected them.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Drops {
    pub writes: u64,
    pub bytes: u64,
    pub records: u64,
}

impl Drops {
    pub fn is_empty(&self) -> bool {
        *self == Drops::default()
    }
}

/// The answer to "may this message go?".
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Admit {
    /// Send it; it counts for this many bytes until the receiver takes it.
    Send(usize),
    /// Dropped, and the receiver has not heard of drops since it last collected them:
    /// send it a notice.
    DroppedFirst,
    /// Dropped; the receiver already has a notice.
    Dropped,
}

/// Bytes sent and not yet taken, and the drops not yet collected.
#[derive(Debug)]
pub struct Backlog {
    limit: usize,
    message_cost: usize,
    bytes: usize,
    drops: Drops,
}

impl Backlog {
    /// A backlog of at most `limit` bytes (always at least one message), each message
    /// counted as its payload plus `message_cost`.
    pub const fn new(limit: usize, message_cost: usize) -> Self {
        Backlog { limit, message_cost, bytes: 0, drops: Drops { writes: 0, bytes: 0, records: 0 } }
    }

    /// Admit a message with `payload_len` bytes of payload.
    pub fn admit(&mut self, kind: Payload, payload_len: usize) -> Admit {
        let cost = payload_len.saturating_add(self.message_cost);
        if self.bytes == 0 || self.bytes.saturating_add(cost) <= self.limit {
            self.bytes = self.bytes.saturating_add(cost);
            return Admit::Send(cost);
        }
        let had_drops = !self.drops.is_empty();
        match kind {
            Payload::Output => {
                self.drops.writes += 1;
                self.drops.bytes += payload_len as u64;
            }
            Payload::Record => self.drops.records += 1,
            Payload::Flush => {}
        }
        if had_drops || self.drops.is_empty() {
            Admit::Dropped
        } else {
            Admit::DroppedFirst
        }
    }

    /// The receiver took a message that counted for `cost` bytes.
    pub fn taken(&mut self, cost: usize) {
        self.bytes = self.bytes.saturating_sub(cost);
    }

    /// A new receiver: what was sent to the one before counts no more.
    pub fn reset(&mut self) {
        self.bytes = 0;
    }

    /// The drops not collected yet; they count as collected now.
    pub fn take_drops(&mut self) -> Drops {
        std::mem::take(&mut self.drops)
    }

    /// Bytes sent and not yet taken.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1_000_000;
    const COST: usize = 128;

    #[test]
    fn one_message_always_goes_however_big() {
        let mut b = Backlog::new(LIMIT, COST);
        assert_eq!(b.admit(Payload::Output, LIMIT * 2), Admit::Send(LIMIT * 2 + COST));
        assert_eq!(b.admit(Payload::Output, 1), Admit::DroppedFirst);
    }

    #[test]
    fn past_the_limit_messages_are_dropped_and_counted() {
        let mut b = Backlog::new(LIMIT, COST);
        let size = 10_000;
        let fits = LIMIT / (size + COST);
        for _ in 0..fits {
            assert_eq!(b.admit(Payload::Output, size), Admit::Send(size + COST));
        }
        assert_eq!(b.bytes(), fits * (size + COST));
        // The first drop asks for a notice, the ones after it do not until collected.
        assert_eq!(b.admit(Payload::Output, size), Admit::DroppedFirst);
        assert_eq!(b.admit(Payload::Record, size), Admit::Dropped);
        assert_eq!(b.take_drops(), Drops { writes: 1, bytes: size as u64, records: 1 });
        assert_eq!(b.take_drops(), Drops::default());
        assert_eq!(b.admit(Payload::Record, size), Admit::DroppedFirst);
        // Taking a message makes room for one more.
        b.taken(size + COST);
        assert_eq!(b.admit(Payload::Output, size), Admit::Send(size + COST));
        assert_eq!(b.admit(Payload::Output, size), Admit::Dropped);
    }

    #[test]
    fn a_dropped_flush_is_not_counted_and_asks_for_no_notice() {
        let mut b = Backlog::new(LIMIT, COST);
        assert!(matches!(b.admit(Payload::Output, LIMIT), Admit::Send(_)));
        assert_eq!(b.admit(Payload::Flush, 0), Admit::Dropped);
        assert!(b.take_drops().is_empty());
    }

    #[test]
    fn a_reset_forgets_what_the_last_receiver_never_took() {
        let mut b = Backlog::new(LIMIT, COST);
        assert!(matches!(b.admit(Payload::Output, LIMIT), Admit::Send(_)));
        b.reset();
        assert_eq!(b.bytes(), 0);
        b.taken(LIMIT);
        assert_eq!(b.bytes(), 0, "taking more than is counted never wraps");
    }

    #[test]
    fn senders_on_many_threads_never_pass_the_limit() {
        use std::sync::{Arc, Mutex};
        let backlog = Arc::new(Mutex::new(Backlog::new(LIMIT, COST)));
        let senders: Vec<_> = (0..4)
            .map(|_| {
                let backlog = Arc::clone(&backlog);
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        let mut b = backlog.lock().unwrap();
                        let _ = b.admit(Payload::Output, 1_000);
                        assert!(b.bytes() <= LIMIT);
                    }
                })
            })
            .collect();
        for s in senders {
            s.join().unwrap();
        }
        let drops = backlog.lock().unwrap().take_drops();
        assert_eq!(drops.writes, 40_000 - (LIMIT / (1_000 + COST)) as u64);
    }
}

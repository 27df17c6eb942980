//! How deep conversion may go, and the stack it runs on.
//!
//! Depth is one count per thread, not a parameter: a value converted through a protocol
//! (`tolist()`, a set copied to a list, a `__str__` that itself sends or stores a value)
//! starts a conversion inside a conversion on the same stack, and a self-containing value
//! reached that way must still meet the limit instead of overflowing the stack.
//!
//! The limit must hold on any thread that converts: a context thread (64 MiB), a Python
//! `threading.Thread` (8 MiB by default) or a BEAM thread. Each level therefore runs
//! through `stacker::maybe_grow`, which continues on a fresh heap-allocated segment when
//! less than `RED_ZONE` of the current stack remains. Conversion stays recursive (it calls
//! back into Python for `__str__`, `tolist()`, and those can convert again), and Python
//! 3.11-3.13 count recursion, they never read the stack pointer, so a segment is invisible
//! to them.

use super::{max_nesting, ConvError};
use std::cell::Cell;

/// Room one conversion level needs before its children are checked again, including a
/// `__str__` or `tolist()` it calls (Python code that may recurse in C up to its limit).
const RED_ZONE: usize = 1024 * 1024;
/// A new segment is as big as a default thread's stack: what Python code run from a
/// conversion could expect anyway.
const SEGMENT: usize = 8 * 1024 * 1024;

thread_local! {
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// One level of conversion: counted while alive, released on drop (also on unwinding).
struct Level;

impl Level {
    fn enter() -> Result<Level, ConvError> {
        let max = max_nesting();
        DEPTH.with(|d| {
            if d.get() >= max {
                return Err(ConvError::TooDeep(max));
            }
            d.set(d.get() + 1);
            Ok(Level)
        })
    }
}

impl Drop for Level {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// Run one level of conversion: fails with `TooDeep` past `max_nesting` levels on this
/// thread, and never runs short of stack.
pub fn nested<T>(level: impl FnOnce() -> Result<T, ConvError>) -> Result<T, ConvError> {
    let _level = Level::enter()?;
    stacker::maybe_grow(RED_ZONE, SEGMENT, level)
}

/// Bytes of stack left on this thread's current stack (or segment), when known.
pub fn remaining_stack() -> Option<usize> {
    stacker::remaining_stack()
}

//! The quick-reply handoff and its polling policy; they live in their own crate
//! (`crates/quick_reply`) so that their unit tests run without a BEAM.

pub use quick_reply::{reply_spin, set_reply_spin, Handoff, SpinPolicy};

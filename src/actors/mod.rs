//! The context actors: each context is one OS thread owning a Python thread state, its
//! namespaces and its asyncio loop, serving the requests of its mailbox (`crate::mailbox`).

pub mod aio;
pub mod callback;
pub mod context;
pub mod interrupt;
pub mod loop_driver;
pub mod thread_call;

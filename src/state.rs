//! Shared state reachable from Erlang (NIFs, no GIL) and from Python (no round trip to
//! Erlang): the global key-value store (`py:state_*`, `erlang.state_*`) and SharedDicts.
//! Keys are terms in the external format; integers are kept as integers so that
//! increments are atomic under the store's lock.

use rustler::{Encoder, Env, Term};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

#[derive(Clone)]
pub enum Stored {
    Int(i64),
    Etf(Vec<u8>),
}

pub enum IncrError {
    NotAnInteger,
    Overflow,
}

impl Stored {
    pub fn from_term(term: Term) -> Stored {
        match term.decode::<i64>() {
            Ok(i) => Stored::Int(i),
            Err(_) => Stored::Etf(term.to_binary().as_slice().to_vec()),
        }
    }

    pub fn to_term<'a>(&self, env: Env<'a>) -> Term<'a> {
        match self {
            Stored::Int(i) => i.encode(env),
            // Produced by term_to_binary in this VM: trusted, and its atoms exist.
            Stored::Etf(etf) => unsafe { env.binary_to_term_trusted(etf) }
                .map(|(t, _)| t)
                .unwrap_or_else(|| crate::atoms::undefined().encode(env)),
        }
    }
}

pub fn key_of(term: Term) -> Vec<u8> {
    term.to_binary().as_slice().to_vec()
}

/// A map from term keys to stored values, safe to share between threads.
#[derive(Default)]
pub struct Table {
    entries: Mutex<HashMap<Vec<u8>, Stored>>,
}

impl Table {
    pub fn store(&self, key: Vec<u8>, value: Stored) {
        self.entries.lock().unwrap().insert(key, value);
    }

    pub fn fetch(&self, key: &[u8]) -> Option<Stored> {
        self.entries.lock().unwrap().get(key).cloned()
    }

    pub fn remove(&self, key: &[u8]) -> bool {
        self.entries.lock().unwrap().remove(key).is_some()
    }

    pub fn keys(&self) -> Vec<Vec<u8>> {
        self.entries.lock().unwrap().keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }

    pub fn clear(&self) {
        self.entries.lock().unwrap().clear();
    }

    /// Add `by` to an integer value (a missing key counts as 0); answers the new value.
    pub fn incr(&self, key: Vec<u8>, by: i64) -> Result<i64, IncrError> {
        let mut entries = self.entries.lock().unwrap();
        let slot = entries.entry(key).or_insert(Stored::Int(0));
        match slot {
            Stored::Int(current) => {
                *current = current.checked_add(by).ok_or(IncrError::Overflow)?;
                Ok(*current)
            }
            Stored::Etf(_) => Err(IncrError::NotAnInteger),
        }
    }
}

/// The application-wide store of `py:state_*`.
pub static GLOBAL: LazyLock<Table> = LazyLock::new(Table::default);

//! Shared state reachable from Erlang (NIFs, no GIL) and from Python (no round trip to
//! Erlang): the global key-value store (`py:state_*`, `erlang.state_*`) and SharedDicts.
//! Keys are terms in the external format; integers are kept as integers so that
//! increments are atomic under the store's lock.

use crate::msg_env::{MsgEnv, RawTerm};
use rustler::{Encoder, Env, Term};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

/// A stored value. Terms are kept as copies in environments of their own and copied out
/// on reading: decoding them from the external format in a process-independent environment
/// (where Python's side reads them) crashes OTP 25 for maps of more than 32 keys.
#[derive(Clone)]
pub enum Stored {
    Int(i64),
    Term(Arc<TermBox>),
}

pub struct TermBox {
    env: MsgEnv,
    term: RawTerm,
}

// The environment is never changed after the copy in; readers only copy out of it.
unsafe impl Sync for TermBox {}

pub enum IncrError {
    NotAnInteger,
    Overflow,
}

impl Stored {
    pub fn from_term(term: Term) -> Stored {
        match term.decode::<i64>() {
            Ok(i) => Stored::Int(i),
            Err(_) => {
                let env = MsgEnv::new();
                let term = env.copy_in(term);
                Stored::Term(Arc::new(TermBox { env, term }))
            }
        }
    }

    pub fn to_term<'a>(&self, env: Env<'a>) -> Term<'a> {
        match self {
            Stored::Int(i) => i.encode(env),
            Stored::Term(b) => {
                let _owner = &b.env;
                unsafe { Term::new(env, rustler::sys::enif_make_copy(env.as_c_arg(), b.term)) }
            }
        }
    }
}

pub fn key_of(term: Term) -> Vec<u8> {
    term.to_binary().as_slice().to_vec()
}

/// A map from term keys (compared through their external format) to stored values, safe
/// to share between threads.
#[derive(Default)]
pub struct Table {
    entries: Mutex<HashMap<Vec<u8>, (Stored, Stored)>>,
}

impl Table {
    pub fn store(&self, key: Term, value: Stored) {
        use std::collections::hash_map::Entry;
        // The key's encoding is made before the lock, and its copy only for a new key.
        let encoded = key_of(key);
        match self.entries.lock().unwrap().entry(encoded) {
            Entry::Occupied(mut entry) => entry.get_mut().1 = value,
            Entry::Vacant(entry) => {
                entry.insert((Stored::from_term(key), value));
            }
        }
    }

    pub fn fetch(&self, key: &[u8]) -> Option<Stored> {
        self.entries.lock().unwrap().get(key).map(|(_, v)| v.clone())
    }

    pub fn remove(&self, key: &[u8]) -> bool {
        self.entries.lock().unwrap().remove(key).is_some()
    }

    pub fn keys(&self) -> Vec<Stored> {
        self.entries.lock().unwrap().values().map(|(k, _)| k.clone()).collect()
    }

    pub fn items(&self) -> Vec<(Stored, Stored)> {
        self.entries.lock().unwrap().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }

    pub fn clear(&self) {
        self.entries.lock().unwrap().clear();
    }

    /// Add `by` to an integer value (a missing key counts as 0); answers the new value.
    pub fn incr(&self, key: Term, by: i64) -> Result<i64, IncrError> {
        let mut entries = self.entries.lock().unwrap();
        let (_, slot) = entries
            .entry(key_of(key))
            .or_insert_with(|| (Stored::from_term(key), Stored::Int(0)));
        match slot {
            Stored::Int(current) => {
                *current = current.checked_add(by).ok_or(IncrError::Overflow)?;
                Ok(*current)
            }
            Stored::Term(_) => Err(IncrError::NotAnInteger),
        }
    }
}

/// The application-wide store of `py:state_*`.
pub static GLOBAL: LazyLock<Table> = LazyLock::new(Table::default);

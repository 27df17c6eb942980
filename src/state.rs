//! Shared state reachable from Erlang (NIFs, no GIL) and from Python (no round trip to
//! Erlang): the global key-value store (`py:state_*`, `erlang.state_*`) and SharedDicts.
//!
//! Entries are kept small: a key is its external format (made canonical, see `key_of`),
//! a value an `i64` inline (so increments are atomic under the table's lock) or its
//! external format, decoded in the reader's environment. An environment of its own per
//! term, as before, cost about 5 KB per entry.

mod etf;

use crate::msg_env::{MsgEnv, RawTerm};
use rustler::{Encoder, Env, Term};
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

/// Tables with more entries than this are dropped on a thread of their own: freeing
/// hundreds of thousands of entries takes long enough to hold up a scheduler.
const DROP_ASIDE_ABOVE: usize = 10_000;

/// A stored value.
#[derive(Clone)]
pub enum Stored {
    Int(i64),
    /// The external format, for terms that any environment can decode.
    Etf(Arc<[u8]>),
    /// A copy in an environment of its own, for terms that hold a fun, or a map of more
    /// than 32 keys before OTP 27: decoding those from the external format in a
    /// process-independent environment (where Python's side reads) crashes OTP 25. They
    /// are big anyway, so the environment's overhead is a small part of them. Also for
    /// binaries of 4 KB or more, whose data the copy shares.
    Term(Arc<TermBox>),
}

pub struct TermBox {
    env: MsgEnv,
    term: RawTerm,
}

// SAFETY: the environment is never changed after the copy in; readers only copy out of
// it (`enif_make_copy` reads the source term), so shared access from threads is sound.
unsafe impl Sync for TermBox {}

pub enum IncrError {
    NotAnInteger,
    Overflow,
}

impl Stored {
    pub fn from_term(term: Term) -> Stored {
        if let Ok(i) = term.decode::<i64>() {
            return Stored::Int(i);
        }
        if is_big_binary(term) {
            // Copying into an environment shares a reference-counted binary's data;
            // the external format would copy it (twice: in, and out on every read).
            return Stored::boxed(term);
        }
        let etf = term.to_binary();
        if etf::scan(etf.as_slice()).needs_process_env {
            Stored::boxed(term)
        } else {
            Stored::Etf(Arc::from(etf.as_slice()))
        }
    }

    fn boxed(term: Term) -> Stored {
        let env = MsgEnv::new();
        let term = env.copy_in(term);
        Stored::Term(Arc::new(TermBox { env, term }))
    }

    pub fn to_term<'a>(&self, env: Env<'a>) -> Term<'a> {
        match self {
            Stored::Int(i) => i.encode(env),
            // SAFETY: the bytes were made by `enif_term_to_binary` of a live term (so its
            // atoms exist) and hold no big map and no fun (see `etf::scan`).
            Stored::Etf(bytes) => match unsafe { env.binary_to_term_trusted(bytes) } {
                Some((term, _)) => term,
                None => rustler::types::atom::undefined().encode(env),
            },
            Stored::Term(b) => {
                let _owner = &b.env;
                // SAFETY: `b.term` lives in `b.env`, which `b` keeps alive for this call;
                // the copy is made in `env`, the caller's environment.
                unsafe { Term::new(env, rustler::sys::enif_make_copy(env.as_c_arg(), b.term)) }
            }
        }
    }

}

/// Binaries from this size on are shared, not copied (the VM's reference-counted binaries
/// start at 65 bytes; below a few KB the environment would cost more than the copy).
const SHARED_BINARY_MIN: usize = 4096;

fn is_big_binary(term: Term) -> bool {
    term.is_binary() && rustler::Binary::from_term(term).is_ok_and(|b| b.len() >= SHARED_BINARY_MIN)
}

/// Whether `0.0 =:= -0.0` in the running VM (true up to OTP 26, false from OTP 27): keys
/// must match as map keys of this VM match.
static ZEROS_IDENTICAL: LazyLock<bool> = LazyLock::new(|| {
    MsgEnv::new().with(|env| 0.0f64.encode(env) == (-0.0f64).encode(env))
});

/// The bytes a key is matched by: its external format, with `-0.0` written as `0.0`
/// wherever the VM holds them identical, so that keys match exactly when they are the
/// same map key (`=:=`). Other terms that are `=:=` already encode alike.
pub fn key_of(term: Term) -> Vec<u8> {
    encode_key(term).0
}

/// `key_of`, and whether the key needs a copy of its own to be read back (see `Stored`).
fn encode_key(term: Term) -> (Vec<u8>, bool) {
    let mut bytes = term.to_binary().as_slice().to_vec();
    let scan = etf::scan(&bytes);
    if *ZEROS_IDENTICAL {
        for at in scan.negative_zeros {
            bytes[at] = 0;
        }
    }
    (bytes, scan.needs_process_env)
}

/// An entry: the key's own copy when its bytes cannot be decoded everywhere, and the value.
type Entry = (Option<Arc<TermBox>>, Stored);

type Shard = HashMap<Arc<[u8]>, Entry>;

/// Shards of a table. Growing a hash map rehashes all of it under its lock, in whichever
/// store crossed the threshold: with one map of 300,000 entries that store held a
/// scheduler for about 50 ms; a shard holds a 32nd of the entries.
const SHARDS: usize = 32;

/// A map from term keys (matched through `key_of`) to stored values, safe to share
/// between threads. Listing and clearing go shard by shard, so they are not atomic with
/// respect to concurrent writes.
pub struct Table {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
}

impl Default for Table {
    fn default() -> Table {
        Table { shards: (0..SHARDS).map(|_| Mutex::default()).collect(), hasher: RandomState::new() }
    }
}

impl Table {
    fn shard(&self, key: &[u8]) -> MutexGuard<'_, Shard> {
        let at = (self.hasher.hash_one(key) >> 32) as usize % SHARDS;
        self.shards[at].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn each_shard(&self) -> impl Iterator<Item = MutexGuard<'_, Shard>> {
        self.shards.iter().map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn store(&self, key: Term, value: Stored) {
        use std::collections::hash_map::Entry as Slot;
        // The key's encoding is made before the lock, and its copy only for a new key.
        let (encoded, needs_copy) = encode_key(key);
        let own = key_copy(key, needs_copy);
        let mut entries = self.shard(&encoded);
        match entries.get_mut(encoded.as_slice()) {
            Some(entry) => entry.1 = value,
            None => {
                if let Slot::Vacant(slot) = entries.entry(Arc::from(encoded)) {
                    slot.insert((own, value));
                }
            }
        }
    }

    pub fn fetch(&self, key: &[u8]) -> Option<Stored> {
        self.shard(key).get(key).map(|(_, v)| v.clone())
    }

    pub fn remove(&self, key: &[u8]) -> bool {
        self.shard(key).remove(key).is_some()
    }

    /// The keys, each readable as a `Stored` (cheap: reference counts under the locks).
    pub fn keys(&self) -> Vec<Stored> {
        let mut keys = Vec::with_capacity(self.len());
        for entries in self.each_shard() {
            keys.extend(entries.iter().map(|(k, (own, _))| key_stored(k, own)));
        }
        keys
    }

    pub fn items(&self) -> Vec<(Stored, Stored)> {
        let mut items = Vec::with_capacity(self.len());
        for entries in self.each_shard() {
            items.extend(entries.iter().map(|(k, (own, v))| (key_stored(k, own), v.clone())));
        }
        items
    }

    pub fn len(&self) -> usize {
        self.each_shard().map(|entries| entries.len()).sum()
    }

    /// Empty the table; the entries are freed outside the locks (aside, when many).
    pub fn clear(&self) {
        let old: Vec<Shard> = self.each_shard().map(|mut entries| std::mem::take(&mut *entries)).collect();
        drop_aside(old);
    }

    /// Add `by` to an integer value (a missing key counts as 0); answers the new value.
    pub fn incr(&self, key: Term, by: i64) -> Result<i64, IncrError> {
        let (encoded, needs_copy) = encode_key(key);
        let own = key_copy(key, needs_copy);
        let mut entries = self.shard(&encoded);
        let (_, slot) = entries.entry(Arc::from(encoded.as_slice())).or_insert((own, Stored::Int(0)));
        match slot {
            Stored::Int(current) => {
                *current = current.checked_add(by).ok_or(IncrError::Overflow)?;
                Ok(*current)
            }
            _ => Err(IncrError::NotAnInteger),
        }
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        let old: Vec<Shard> = self
            .shards
            .iter_mut()
            .map(|m| std::mem::take(m.get_mut().unwrap_or_else(|e| e.into_inner())))
            .collect();
        drop_aside(old);
    }
}

fn drop_aside(old: Vec<Shard>) {
    if old.iter().map(|shard| shard.len()).sum::<usize>() > DROP_ASIDE_ABOVE {
        // A failed spawn drops `old` here instead; nothing is lost.
        let _ = std::thread::Builder::new().name("py-state-drop".into()).spawn(move || drop(old));
    }
}

/// A copy of the key in an environment of its own, when its bytes need one to be read.
fn key_copy(key: Term, needed: bool) -> Option<Arc<TermBox>> {
    match needed {
        true => match Stored::boxed(key) {
            Stored::Term(b) => Some(b),
            _ => None,
        },
        false => None,
    }
}

fn key_stored(bytes: &Arc<[u8]>, own: &Option<Arc<TermBox>>) -> Stored {
    match own {
        Some(b) => Stored::Term(b.clone()),
        None => Stored::Etf(bytes.clone()),
    }
}

/// The application-wide store of `py:state_*`.
pub static GLOBAL: LazyLock<Table> = LazyLock::new(Table::default);

/// A process-scoped dictionary (`py:shared_dict_new/0`), destroyed explicitly or when its
/// owner exits; usable from Erlang and, as `erlang.SharedDict`, from Python.
#[derive(Default)]
pub struct SharedDictRes {
    pub table: Table,
    destroyed: std::sync::atomic::AtomicBool,
}

impl SharedDictRes {
    pub fn destroy(&self) {
        self.destroyed.store(true, std::sync::atomic::Ordering::Release);
        self.table.clear();
    }

    /// The table, unless the dictionary was destroyed.
    pub fn live(&self) -> Option<&Table> {
        (!self.destroyed.load(std::sync::atomic::Ordering::Acquire)).then_some(&self.table)
    }
}

#[rustler::resource_impl]
impl rustler::Resource for SharedDictRes {
    fn down<'a>(&'a self, _env: rustler::Env<'a>, _pid: rustler::LocalPid, _mon: rustler::Monitor) {
        self.destroy();
    }
}

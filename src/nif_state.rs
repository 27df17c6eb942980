//! NIFs of the shared state: `py:state_*` and `py:shared_dict_*`, and of tracing. They
//! hold a lock for a map operation only and never touch Python. Those whose work grows
//! with the number of entries or spans run on dirty CPU schedulers; reading a big value
//! (more than `BIG_VALUE` bytes encoded) is handed to a dirty scheduler too, through
//! `state_fetch` answering `big` (see `py:state_fetch/1`).

use crate::atoms;
use crate::state::SharedDictRes;
use crate::state::{key_of, IncrError, Stored, GLOBAL};
use rustler::{Atom, Encoder, Env, NifResult, ResourceArc, Term};

rustler::atoms! { not_found, badarith, big, off, python, all }

/// Values bigger than this (encoded) are decoded on a dirty scheduler: about 1 ms of work.
const BIG_VALUE: usize = 1 << 20;

#[rustler::nif]
fn state_store(key: Term, value: Term) -> Atom {
    GLOBAL.store(key, Stored::from_term(value));
    atoms::ok()
}

/// `state_store` on a dirty scheduler, for values too big to encode in a time slice.
#[rustler::nif(schedule = "DirtyCpu")]
fn state_store_dirty(key: Term, value: Term) -> Atom {
    GLOBAL.store(key, Stored::from_term(value));
    atoms::ok()
}

/// `{ok, Value}`, `{error, not_found}`, or `big` when the value should be read with
/// `state_fetch_dirty`.
#[rustler::nif]
fn state_fetch<'a>(env: Env<'a>, key: Term<'a>) -> Term<'a> {
    match GLOBAL.fetch(&key_of(key)) {
        Some(value) if is_big(&value) => big().encode(env),
        Some(value) => (atoms::ok(), value.to_term(env)).encode(env),
        None => (atoms::error(), not_found()).encode(env),
    }
}

#[rustler::nif(schedule = "DirtyCpu")]
fn state_fetch_dirty<'a>(env: Env<'a>, key: Term<'a>) -> Term<'a> {
    match GLOBAL.fetch(&key_of(key)) {
        Some(value) => (atoms::ok(), value.to_term(env)).encode(env),
        None => (atoms::error(), not_found()).encode(env),
    }
}

fn is_big(value: &Stored) -> bool {
    match value {
        Stored::Int(_) => false,
        Stored::Etf(bytes) => bytes.len() > BIG_VALUE,
        // Kept in an environment: a map of more than 32 keys or a fun; copying is cheap
        // unless the term is big, which its encoding's size is not known for. Be safe.
        Stored::Term(_) => true,
    }
}

#[rustler::nif]
fn state_remove(key: Term) -> Atom {
    GLOBAL.remove(&key_of(key));
    atoms::ok()
}

#[rustler::nif(schedule = "DirtyCpu")]
fn state_keys(env: Env) -> Vec<Term> {
    decode_keys(env, GLOBAL.keys())
}

#[rustler::nif(schedule = "DirtyCpu")]
fn state_clear() -> Atom {
    GLOBAL.clear();
    atoms::ok()
}

#[rustler::nif]
fn state_incr(key: Term, by: i64) -> NifResult<i64> {
    GLOBAL.incr(key, by).map_err(incr_error)
}

/// `{ok, Handle}`, as 2.3.1 answered (its reference text promised a bare handle).
#[rustler::nif]
fn shared_dict_new(env: Env) -> (Atom, ResourceArc<SharedDictRes>) {
    let dict = ResourceArc::new(SharedDictRes::default());
    dict.monitor(Some(env), &env.pid());
    (atoms::ok(), dict)
}

/// `{ok, Value}`, `error` when the key is missing, or `big` (as for `state_fetch`).
#[rustler::nif]
fn shared_dict_get<'a>(env: Env<'a>, dict: ResourceArc<SharedDictRes>, key: Term<'a>) -> NifResult<Term<'a>> {
    Ok(match live(&dict)?.fetch(&key_of(key)) {
        Some(value) if is_big(&value) => big().encode(env),
        Some(value) => (atoms::ok(), value.to_term(env)).encode(env),
        None => atoms::error().encode(env),
    })
}

#[rustler::nif(schedule = "DirtyCpu")]
fn shared_dict_get_dirty<'a>(env: Env<'a>, dict: ResourceArc<SharedDictRes>, key: Term<'a>) -> NifResult<Term<'a>> {
    Ok(match live(&dict)?.fetch(&key_of(key)) {
        Some(value) => (atoms::ok(), value.to_term(env)).encode(env),
        None => atoms::error().encode(env),
    })
}

#[rustler::nif]
fn shared_dict_set(dict: ResourceArc<SharedDictRes>, key: Term, value: Term) -> NifResult<Atom> {
    live(&dict)?.store(key, Stored::from_term(value));
    Ok(atoms::ok())
}

#[rustler::nif]
fn shared_dict_del(dict: ResourceArc<SharedDictRes>, key: Term) -> NifResult<Atom> {
    live(&dict)?.remove(&key_of(key));
    Ok(atoms::ok())
}

#[rustler::nif(schedule = "DirtyCpu")]
fn shared_dict_keys(env: Env, dict: ResourceArc<SharedDictRes>) -> NifResult<Vec<Term>> {
    Ok(decode_keys(env, live(&dict)?.keys()))
}

/// Idempotent: destroying a destroyed dictionary answers `ok` too, so cleanup code that
/// races the owner's exit never fails.
#[rustler::nif(schedule = "DirtyCpu")]
fn shared_dict_destroy(dict: ResourceArc<SharedDictRes>) -> Atom {
    dict.destroy();
    atoms::ok()
}

/// A destroyed dictionary is a bad argument (`error:badarg`), as in 2.3.1: the handle no
/// longer names a dictionary.
fn live(dict: &SharedDictRes) -> NifResult<&crate::state::Table> {
    dict.live().ok_or(rustler::Error::BadArg)
}

fn decode_keys(env: Env, keys: Vec<Stored>) -> Vec<Term> {
    keys.iter().map(|k| k.to_term(env)).collect()
}

fn incr_error(e: IncrError) -> rustler::Error {
    match e {
        IncrError::NotAnInteger => rustler::Error::RaiseAtom("badarith"),
        IncrError::Overflow => rustler::Error::RaiseTerm(Box::new((badarith(), "overflow"))),
    }
}

/// `python`: record the spans Python code makes with `erlang.Span` (2.3.1's tracing);
/// `all`: the runtime's request and callback spans too; `off`: nothing.
#[rustler::nif]
fn tracing_enable(what: Atom) -> rustler::NifResult<Atom> {
    let (enabled, runtime) = if what == off() {
        (false, false)
    } else if what == python() {
        (true, false)
    } else if what == all() {
        (true, true)
    } else {
        return Err(rustler::Error::BadArg);
    };
    crate::spans::set_enabled(enabled, runtime);
    Ok(atoms::ok())
}

#[rustler::nif(schedule = "DirtyCpu")]
fn tracing_spans(env: Env) -> Vec<Term> {
    crate::spans::finished_terms(env)
}

#[rustler::nif(schedule = "DirtyCpu")]
fn tracing_clear() -> Atom {
    crate::spans::clear();
    atoms::ok()
}

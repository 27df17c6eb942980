//! Atoms made from Python data: existing atoms are reused; new ones are created only up to
//! a limit, after which the text arrives as a binary. The atom table is never exhausted.

use rustler::sys::{enif_make_atom_len, enif_make_existing_atom_len, ErlNifCharEncoding};
use rustler::{Encoder, Env, Term};
use std::sync::atomic::{AtomicUsize, Ordering};

static NEW_ATOMS_LEFT: AtomicUsize = AtomicUsize::new(10_000);

pub fn set_atom_limit(limit: usize) {
    NEW_ATOMS_LEFT.store(limit, Ordering::Relaxed);
}

/// An atom named `name`, or a binary when it cannot or may not become one.
pub fn bounded_atom<'a>(env: Env<'a>, name: &str) -> Term<'a> {
    let latin1: Option<Vec<u8>> = name
        .chars()
        .map(|c| u8::try_from(c as u32).ok())
        .collect();
    let Some(bytes) = latin1.filter(|b| b.len() <= 255) else {
        return name.encode(env);
    };
    let raw_env = env.as_c_arg();
    let mut atom = rustler::sys::ErlNifTerm::default();
    let found = unsafe {
        enif_make_existing_atom_len(
            raw_env,
            bytes.as_ptr() as *const _,
            bytes.len(),
            &mut atom,
            ErlNifCharEncoding::ERL_NIF_LATIN1,
        )
    };
    if found != 0 {
        return unsafe { Term::new(env, atom) };
    }
    let reserved = NEW_ATOMS_LEFT
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| left.checked_sub(1))
        .is_ok();
    if !reserved {
        return name.encode(env);
    }
    unsafe { Term::new(env, enif_make_atom_len(raw_env, bytes.as_ptr() as *const _, bytes.len())) }
}

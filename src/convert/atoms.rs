//! Atoms both ways. Reading: any atom's text, including names beyond Latin-1 (which
//! `enif_get_atom` cannot read before OTP 26). Making: existing atoms are reused; new ones
//! are created only up to a limit, after which the text arrives as a binary, so Python data
//! never exhausts the atom table.

use rustler::{Encoder, Env, Term};
use std::sync::atomic::{AtomicUsize, Ordering};

const VERSION: u8 = 131;
const ATOM_UTF8_EXT: u8 = 118;
const SMALL_ATOM_UTF8_EXT: u8 = 119;
/// Erlang's limit on an atom's length, in characters.
const MAX_ATOM_CHARS: usize = 255;

/// New atoms made so far in this VM, and how many may be made (counted across restarts
/// of the application: the atom table never shrinks).
static ATOMS_CREATED: AtomicUsize = AtomicUsize::new(0);
static ATOM_LIMIT: AtomicUsize = AtomicUsize::new(10_000);

pub fn set_atom_limit(limit: usize) {
    ATOM_LIMIT.store(limit, Ordering::Relaxed);
}

/// The text of an atom term.
pub fn atom_text(term: Term) -> Option<String> {
    if let Ok(latin1) = term.atom_to_string() {
        return Some(latin1);
    }
    let etf = term.to_binary();
    let bytes = etf.as_slice();
    let (len, start) = match *bytes.get(1)? {
        ATOM_UTF8_EXT => (u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?) as usize, 4),
        SMALL_ATOM_UTF8_EXT => (*bytes.get(2)? as usize, 3),
        _ => return None,
    };
    String::from_utf8(bytes.get(start..start + len)?.to_vec()).ok()
}

/// The external format of an atom named `name` (at most `MAX_ATOM_CHARS` characters).
fn atom_etf(name: &str) -> Vec<u8> {
    let mut etf = Vec::with_capacity(name.len() + 4);
    etf.push(VERSION);
    if name.len() <= 255 {
        etf.extend_from_slice(&[SMALL_ATOM_UTF8_EXT, name.len() as u8]);
    } else {
        etf.push(ATOM_UTF8_EXT);
        etf.extend_from_slice(&(name.len() as u16).to_be_bytes());
    }
    etf.extend_from_slice(name.as_bytes());
    etf
}

/// The atom named `name` if it exists already; never creates one (the safe decoder
/// refuses to).
pub fn existing_atom<'a>(env: Env<'a>, name: &str) -> Option<Term<'a>> {
    if name.chars().count() > MAX_ATOM_CHARS {
        return None;
    }
    env.binary_to_term(&atom_etf(name)).map(|(atom, _)| atom)
}

/// An atom named `name`, or a binary when it may not become one (too long, or no budget
/// left for a new atom).
pub fn bounded_atom<'a>(env: Env<'a>, name: &str) -> Term<'a> {
    if name.chars().count() > MAX_ATOM_CHARS {
        return name.encode(env);
    }
    let etf = atom_etf(name);
    if let Some((atom, _)) = env.binary_to_term(&etf) {
        return atom;
    }
    let limit = ATOM_LIMIT.load(Ordering::Relaxed);
    let reserved = ATOMS_CREATED
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |made| (made < limit).then_some(made + 1))
        .is_ok();
    if !reserved {
        return name.encode(env);
    }
    // SAFETY: `etf` is a well-formed atom encoding built just above, which is all that
    // the trusted decoder assumes.
    match unsafe { env.binary_to_term_trusted(&etf) } {
        Some((atom, _)) => atom,
        None => name.encode(env),
    }
}

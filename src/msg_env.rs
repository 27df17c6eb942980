//! Process-independent environments, and the terms that live in them.
//!
//! A raw term is only meaningful in the environment that made it, and only until that
//! environment is cleared. `Held` is such a term with a note of where it lives: it turns
//! back into a `rustler::Term` only through the `MsgEnv` that made it, and only while that
//! environment has not been cleared since (each clear starts a new generation), so a term
//! that would dangle is refused instead of read. `OwnedTerm` keeps one term and its
//! environment together.
//!
//! rustler's `OwnedEnv` always sends when asked to build a message; a request that was
//! cancelled must build its reply and then *not* send it, so we keep the raw environment.

use rustler::sys::{
    enif_alloc_env, enif_clear_env, enif_free_env, enif_make_copy, enif_send, ErlNifEnv,
};
use rustler::{Env, LocalPid, Term};
use std::ptr::NonNull;

pub type RawTerm = rustler::sys::ErlNifTerm;

pub struct MsgEnv {
    raw: NonNull<ErlNifEnv>,
    /// Bumped by every clear: terms `Held` from an older generation are gone.
    generation: u64,
}

// SAFETY: the environment is process-independent and only used by one thread at a time
// (`MsgEnv` is not `Sync`, and `&mut` is needed to clear or send).
unsafe impl Send for MsgEnv {}

/// A term of one `MsgEnv`, valid while that environment is not cleared (see the module
/// doc). Plain data: copying it copies the handle, not the term.
#[derive(Clone, Copy)]
pub struct Held {
    term: RawTerm,
    env: *mut ErlNifEnv,
    generation: u64,
}

// SAFETY: a `Held` is only an address and a number; it is read only through the `MsgEnv`
// that made it, which checks it, on the thread that owns that environment.
unsafe impl Send for Held {}

thread_local! {
    /// One cleared environment kept per scheduler thread for the next request: a quick
    /// reply hands its environment back to the thread that allocated it.
    static SPARE: std::cell::Cell<Option<MsgEnv>> = const { std::cell::Cell::new(None) };
}

impl Default for MsgEnv {
    fn default() -> Self {
        MsgEnv::new()
    }
}

impl MsgEnv {
    pub fn new() -> MsgEnv {
        // SAFETY: allocating a process-independent environment has no precondition.
        let raw = unsafe { enif_alloc_env() };
        MsgEnv { raw: NonNull::new(raw).expect("enif_alloc_env failed"), generation: 0 }
    }

    /// `new`, reusing this thread's spare environment when there is one.
    pub fn reuse_or_new() -> MsgEnv {
        SPARE.with(|spare| spare.take()).unwrap_or_default()
    }

    /// Clear this environment and keep it as this thread's spare (see `reuse_or_new`).
    pub fn recycle(mut self) {
        self.clear();
        SPARE.with(|spare| spare.set(Some(self)));
    }

    fn raw(&self) -> *mut ErlNifEnv {
        self.raw.as_ptr()
    }

    /// Copy a term from another environment into this one.
    pub fn copy_in(&self, term: Term) -> RawTerm {
        // SAFETY: `term` is alive in its own environment for the duration of the call;
        // the copy is made in ours, which is alive.
        unsafe { enif_make_copy(self.raw(), term.as_c_arg()) }
    }

    /// Copy a term of another live environment into this one (for `copy_held`).
    fn copy_raw(&self, term: RawTerm) -> RawTerm {
        // SAFETY: `copy_held` passes a held term it has just checked against its own live,
        // uncleared environment; the copy is made in ours, which is alive.
        unsafe { enif_make_copy(self.raw(), term) }
    }

    /// Copy a term held by another environment into this one.
    pub fn copy_held(&self, from: &MsgEnv, held: Held) -> Held {
        from.check(held);
        self.hold_raw(self.copy_raw(held.term))
    }

    /// Run `f` with an `Env` for this environment; terms it returns must not outlive the call
    /// (keep one with `hold`).
    pub fn with<R>(&self, f: impl for<'a> FnOnce(Env<'a>) -> R) -> R {
        let marker = ();
        // SAFETY: the environment is alive for the call, and the `Env`'s lifetime is that
        // of `marker`, so no term made in `f` can escape it as a `Term`.
        let env = unsafe { Env::new(&marker, self.raw()) };
        f(env)
    }

    /// Keep a term made in this environment (inside `with`) beyond the closure.
    pub fn hold(&self, term: Term) -> Held {
        assert!(term.get_env().as_c_arg() == self.raw(), "a term held by an environment that did not make it");
        self.hold_raw(term.as_c_arg())
    }

    fn hold_raw(&self, term: RawTerm) -> Held {
        Held { term, env: self.raw(), generation: self.generation }
    }

    /// A held term of this environment as a `Term` of `env` (this environment's `Env`,
    /// from `with`). Panics on a term of another environment or of an older generation:
    /// reading it would be reading freed memory.
    pub fn term<'a>(&self, env: Env<'a>, held: Held) -> Term<'a> {
        assert!(env.as_c_arg() == self.raw(), "an Env of another environment");
        self.check(held);
        // SAFETY: checked just above: `held` was made in this environment, which has not
        // been cleared since, and `env` is this environment's.
        unsafe { Term::new(env, held.term) }
    }

    fn check(&self, held: Held) {
        assert!(
            held.env == self.raw() && held.generation == self.generation,
            "a term of another environment, or of a cleared one"
        );
    }

    /// Drop every term built in this environment (every `Held` of it turns invalid).
    pub fn clear(&mut self) {
        // SAFETY: the environment is ours and alive; `&mut self` means no `Env` of it is
        // lent out, and the new generation invalidates the held terms.
        unsafe { enif_clear_env(self.raw()) };
        self.generation += 1;
    }

    /// Send `msg` (a term of this environment) to `pid`, then clear the environment.
    /// Must run on a thread the VM does not manage.
    fn send_and_clear(&mut self, pid: &LocalPid, msg: RawTerm) -> bool {
        // SAFETY: a NULL caller environment is allowed off the schedulers (documented
        // above); the callers pass a message built in this environment, which is alive.
        let sent = unsafe { enif_send(std::ptr::null_mut(), pid.as_c_arg(), self.raw(), msg) } == 1;
        self.clear();
        sent
    }

    /// `send_and_clear` for a held message.
    pub fn send_held(&mut self, pid: &LocalPid, msg: Held) -> bool {
        self.check(msg);
        self.send_and_clear(pid, msg.term)
    }
}

impl Drop for MsgEnv {
    fn drop(&mut self) {
        // SAFETY: the environment is ours, allocated by `enif_alloc_env`, freed only here.
        unsafe { enif_free_env(self.raw()) }
    }
}

/// One term together with the environment that owns it.
pub struct OwnedTerm {
    env: MsgEnv,
    term: Held,
}

impl OwnedTerm {
    /// Build a term in `env` (its previous terms are no longer reachable from here).
    pub fn build(env: MsgEnv, f: impl for<'a> FnOnce(Env<'a>) -> Term<'a>) -> OwnedTerm {
        let term = env.with(|e| env.hold(f(e)));
        OwnedTerm { env, term }
    }

    /// `build` for a builder that may fail (the environment is dropped then).
    pub fn try_build<E>(env: MsgEnv, f: impl for<'a> FnOnce(Env<'a>) -> Result<Term<'a>, E>) -> Result<OwnedTerm, E> {
        let term = env.with(|e| f(e).map(|t| env.hold(t)))?;
        Ok(OwnedTerm { env, term })
    }

    /// `term`, a term held by `env`, as one value.
    pub fn new(env: MsgEnv, term: Held) -> OwnedTerm {
        env.check(term);
        OwnedTerm { env, term }
    }

    /// The environment and the handle of its term.
    pub fn into_parts(self) -> (MsgEnv, Held) {
        (self.env, self.term)
    }

    /// Read the term.
    pub fn with<R>(&self, f: impl for<'a> FnOnce(Env<'a>, Term<'a>) -> R) -> R {
        self.env.with(|e| f(e, self.env.term(e, self.term)))
    }

    /// Send the term to `pid`; the environment goes with it.
    pub fn send(mut self, pid: &LocalPid) -> bool {
        self.env.send_held(pid, self.term)
    }

    /// Copy the term into `env` (a caller's), and give the environment back, cleared.
    pub fn copy_into<'a>(self, env: Env<'a>) -> (Term<'a>, MsgEnv) {
        let copied = self.with(|_, term| term.in_env(env));
        let mut own = self.env;
        own.clear();
        (copied, own)
    }
}

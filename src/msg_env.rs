//! A process-independent environment that carries one request and its reply.
//!
//! rustler's `OwnedEnv` always sends when asked to build a message; a request that was
//! cancelled must build its reply and then *not* send it, so we keep the raw environment.

use rustler::sys::{
    enif_alloc_env, enif_clear_env, enif_free_env, enif_make_copy, enif_send, ErlNifEnv,
};
use rustler::{Env, LocalPid, Term};

pub type RawTerm = rustler::sys::ErlNifTerm;

pub struct MsgEnv {
    raw: *mut ErlNifEnv,
}

// The environment is process-independent and only used by one thread at a time.
unsafe impl Send for MsgEnv {}

thread_local! {
    /// One cleared environment kept per scheduler thread for the next request: a quick
    /// reply hands its environment back to the thread that allocated it.
    static SPARE: std::cell::Cell<Option<MsgEnv>> = const { std::cell::Cell::new(None) };
}

impl MsgEnv {
    pub fn new() -> MsgEnv {
        MsgEnv { raw: unsafe { enif_alloc_env() } }
    }

    /// `new`, reusing this thread's spare environment when there is one.
    pub fn reuse_or_new() -> MsgEnv {
        SPARE.with(|spare| spare.take()).unwrap_or_else(MsgEnv::new)
    }

    /// Clear this environment and keep it as this thread's spare (see `reuse_or_new`).
    pub fn recycle(mut self) {
        if self.raw.is_null() {
            return;
        }
        self.clear();
        SPARE.with(|spare| spare.set(Some(self)));
    }

    /// Copy a term from another environment into this one.
    pub fn copy_in(&self, term: Term) -> RawTerm {
        unsafe { enif_make_copy(self.raw, term.as_c_arg()) }
    }

    /// Copy a term of another live environment into this one.
    pub fn copy_raw(&self, term: RawTerm) -> RawTerm {
        unsafe { enif_make_copy(self.raw, term) }
    }

    /// Run `f` with an `Env` for this environment; terms it returns must not outlive the call.
    pub fn with<R>(&self, f: impl for<'a> FnOnce(Env<'a>) -> R) -> R {
        let marker = ();
        let env = unsafe { Env::new(&marker, self.raw) };
        f(env)
    }

    /// Move the environment out, leaving an empty handle that must not be used again.
    pub fn take(&mut self) -> MsgEnv {
        MsgEnv { raw: std::mem::replace(&mut self.raw, std::ptr::null_mut()) }
    }

    /// Drop every term built in this environment.
    pub fn clear(&mut self) {
        unsafe { enif_clear_env(self.raw) };
    }

    /// Send `msg` (a term of this environment) to `pid`, then clear the environment.
    /// Must run on a thread the VM does not manage.
    pub fn send_and_clear(&mut self, pid: &LocalPid, msg: RawTerm) -> bool {
        let sent = unsafe { enif_send(std::ptr::null_mut(), pid.as_c_arg(), self.raw, msg) } == 1;
        unsafe { enif_clear_env(self.raw) };
        sent
    }
}

impl Drop for MsgEnv {
    fn drop(&mut self) {
        if !self.raw.is_null() {
            unsafe { enif_free_env(self.raw) }
        }
    }
}

//! Native core of the `erlang_python` OTP application.
//!
//! The NIF layer (`nif`) only decodes arguments and hands messages to context actors
//! (`actors`); every Python object is touched on an actor's own thread. Conversion between
//! Erlang terms and Python objects lives in `convert`, the native half of the `erlang`
//! Python module in `erlang_module`, and interpreter start-up in `runtime`.

mod actors;
mod atoms;
mod convert;
mod erlang_module;
mod execute;
mod ext_gate;
mod interp;
mod interp_kit;
mod module_guard;
mod msg_env;
mod nif;
mod nif_state;
mod otlp_export;
mod output;
mod py_args;
mod py_errors;
mod pytypes;
mod mailbox;
mod runtime;
mod spans;
mod spans_py;
mod state;
mod state_py;
mod trace;
mod vm_release;

rustler::init!("py_nif", load = on_load);

fn on_load(env: rustler::Env, _info: rustler::Term) -> bool {
    // Resource types register themselves (`#[rustler::resource_impl]`).
    let _ = env;
    runtime::promote_libpython_to_global();
    true
}

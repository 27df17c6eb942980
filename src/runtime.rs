//! Interpreter start-up and the interrupter.
//!
//! Python is initialized once, on a dedicated thread that stays alive afterwards as the
//! interrupter: a timed-out caller asks it to raise `erlang.Interrupted` in the context
//! thread that still runs its request. It is never finalized, so the application can stop
//! and start again in the same VM.

use crate::mailbox::ContextShared;
use crate::atoms;
use crate::msg_env::{MsgEnv, OwnedTerm};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyList;
use rustler::{Encoder, LocalPid};
use std::sync::{Arc, Mutex};

pub struct InitOptions {
    /// Directory holding the `erlang_shim` package.
    pub shim_dir: String,
    /// Extra `sys.path` entries, put in front.
    pub python_path: Vec<String>,
    /// A virtual environment whose site-packages come first on `sys.path`.
    pub venv: Option<String>,
}

enum InitState {
    Idle,
    Running(Vec<LocalPid>),
    Done(Result<(), String>),
}

pub enum InitStatus {
    Ready(Result<(), String>),
    /// The caller receives `{py_init, ok | {error, Message}}` when it is done.
    Started,
}

static INIT: Mutex<InitState> = Mutex::new(InitState::Idle);
/// The options Python was set up with, for every sub-interpreter a context creates.
static OPTIONS: std::sync::OnceLock<InitOptions> = std::sync::OnceLock::new();

/// The BEAM loads NIF libraries with local symbol scope; C extension modules (`_decimal`,
/// `_ctypes`, numpy) resolve `Py*` symbols globally, so libpython must be made global.
pub fn promote_libpython_to_global() {
    // SAFETY: `dladdr` fills a zeroed `Dl_info` for an address inside this library (a
    // libpython function we link); the file name it gives stays valid while libpython is
    // loaded, and `RTLD_NOLOAD` only changes the scope of an already loaded library.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        let symbol = ffi::Py_IsInitialized as *const libc::c_void;
        if libc::dladdr(symbol, &mut info) == 0 || info.dli_fname.is_null() {
            return;
        }
        let path = std::ffi::CStr::from_ptr(info.dli_fname);
        if path.to_string_lossy().contains("libpython") {
            libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL | libc::RTLD_NOLOAD);
        }
    }
}

/// Python allocates large objects (a 1 MiB `bytes` argument) with malloc. The BEAM sets a
/// small malloc trim threshold, and glibc serves large blocks with fresh mmaps, so each
/// such allocation page-faults its memory in again (measured: ~1 ms per 1 MiB argument).
/// Keeping blocks up to 32 MiB in the heap, and trimming only past 64 MiB of free top,
/// lets the memory be reused: the price is up to that much freed memory kept in RSS.
fn tune_malloc_for_large_objects() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only tunes glibc's allocator; any value is valid for these options.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 * 1024 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 * 1024 * 1024);
    }
}

/// The BEAM ignores SIGCHLD, so the kernel reaps children at once and discards their exit
/// status: Python's `subprocess` would then report 0 for every program. The default
/// disposition keeps statuses for whoever waits (Python waits for its own children; the
/// BEAM's ports have their own reaper, `erl_child_setup`).
fn keep_child_exit_statuses() {
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGCHLD installs no handler of ours.
    unsafe {
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
    }
}

pub fn start(caller: LocalPid, options: InitOptions) -> InitStatus {
    let mut state = INIT.lock().unwrap();
    match &mut *state {
        InitState::Done(result) => InitStatus::Ready(result.clone()),
        InitState::Running(waiters) => {
            waiters.push(caller);
            InitStatus::Started
        }
        InitState::Idle => {
            tune_malloc_for_large_objects();
            keep_child_exit_statuses();
            let spawned = std::thread::Builder::new()
                .name("py-main".into())
                .stack_size(16 * 1024 * 1024)
                .spawn(move || main_thread(options));
            match spawned {
                Ok(_) => {
                    *state = InitState::Running(vec![caller]);
                    InitStatus::Started
                }
                Err(e) => InitStatus::Ready(Err(format!("cannot start the Python thread: {e}"))),
            }
        }
    }
}

fn main_thread(options: InitOptions) {
    pyo3::append_to_inittab!(erlang_module_def);
    Python::initialize();
    let options = OPTIONS.get_or_init(|| options);
    let result = Python::attach(|py| setup(py, options)).map_err(|e| e.to_string());
    let (tx, rx) = crossbeam_channel::unbounded::<(Arc<ContextShared>, u64)>();
    crate::mailbox::interrupts::install(tx);
    let probes = crate::ext_gate::install_answerer();
    let waiters = {
        let mut state = INIT.lock().unwrap();
        match std::mem::replace(&mut *state, InitState::Done(result.clone())) {
            InitState::Running(w) => w,
            _ => Vec::new(),
        }
    };
    for waiter in waiters {
        let msg = OwnedTerm::build(MsgEnv::new(), |e| {
            let status = match &result {
                Ok(()) => atoms::ok().encode(e),
                Err(why) => (atoms::error(), why.as_str()).encode(e),
            };
            (atoms::py_init(), status).encode(e)
        });
        msg.send(&waiter);
    }
    if result.is_ok() {
        serve_main(rx, probes);
    }
}

use crate::erlang_module::erlang as erlang_module_def;

/// The start-up thread's work once Python is up: interrupt requests of main-interpreter
/// contexts, and sub-interpreters' questions about extension modules (`ext_gate`).
fn serve_main(interrupts: crossbeam_channel::Receiver<(Arc<ContextShared>, u64)>, probes: crossbeam_channel::Receiver<crate::ext_gate::Probe>) {
    loop {
        crossbeam_channel::select! {
            recv(interrupts) -> msg => match msg {
                Ok((shared, req_id)) => Python::attach(|py| crate::actors::interrupt::interrupt(py, &shared, req_id)),
                Err(_) => return,
            },
            recv(probes) -> msg => match msg {
                Ok(probe) => Python::attach(|py| crate::ext_gate::answer(py, probe)),
                Err(_) => return,
            },
        }
    }
}

/// Ready a sub-interpreter a context just created, as the main one was at start-up, and
/// gate its extension modules.
pub fn prepare_interpreter(py: Python<'_>) -> PyResult<()> {
    let options = OPTIONS.get().ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("Python is not set up"))?;
    setup(py, options)?;
    crate::ext_gate::install_gate(py)
}

fn setup(py: Python<'_>, options: &InitOptions) -> PyResult<()> {
    // Whichever thread imports threading first becomes its MainThread: make it this one.
    py.import("threading")?;
    let sys = py.import("sys")?;
    let path = sys.getattr("path")?.cast_into::<PyList>()?;
    path.insert(0, &options.shim_dir)?;
    let shim = py.import("erlang_shim")?;
    shim.call_method1("install", (options.python_path.clone(), options.venv.clone()))?;
    crate::module_guard::remember(py)
}

//! Which extension modules a sub-interpreter may load. CPython refuses a single-phase
//! extension (one whose state is C globals) in an isolated interpreter only after running
//! its init function there; two interpreters running it at once can corrupt the heap.
//! So before a sub-interpreter loads an extension, the gate (`erlang_shim._ext_gate`)
//! asks the main interpreter here: it imports the module itself (the main interpreter
//! may load anything), and the module's definition tells whether it is multi-phase
//! (PEP 489, `m_slots` set). Multi-phase modules then load normally (CPython still
//! checks their `Py_mod_multiple_interpreters` slot, before any of their code runs);
//! others fail with an `ImportError` that names the reason. Answers are kept per module
//! and file, as text, so no Python object crosses interpreters.

use crossbeam_channel::{Receiver, Sender};
use pyo3::ffi;
use pyo3::prelude::*;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// How long a sub-interpreter waits for the main interpreter's answer (it imports the
/// module, which may be slow, and needs the main GIL).
const PROBE_WAIT: Duration = Duration::from_secs(60);

/// A question for the main interpreter: may `name` (from file `origin`) load in a
/// sub-interpreter? The answer is `None` (yes) or the refusal's text.
pub struct Probe {
    name: String,
    origin: String,
    answer: Sender<Option<String>>,
}

static QUESTIONS: OnceLock<Sender<Probe>> = OnceLock::new();
/// Verdicts by (module name, file): `None` allowed, else the refusal's text.
type Verdicts = HashMap<(String, String), Option<String>>;
static ANSWERS: Mutex<Option<Verdicts>> = Mutex::new(None);

/// The main interpreter's thread answers from `questions` from now on.
pub fn install_answerer() -> Receiver<Probe> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let _ = QUESTIONS.set(tx);
    rx
}

/// Put the gate in front of the finders of the (sub-)interpreter this thread is in.
pub fn install_gate(py: Python<'_>) -> PyResult<()> {
    let probe = pyo3::wrap_pyfunction!(_probe_extension, py)?;
    py.import("erlang_shim._ext_gate")?.call_method1("install", (probe,))?;
    Ok(())
}

/// `probe(name, origin)` of `_ext_gate.py`, run in a sub-interpreter.
#[pyfunction]
fn _probe_extension(py: Python<'_>, name: String, origin: String) -> Option<String> {
    let key = (name.clone(), origin.clone());
    if let Some(known) = ANSWERS.lock().unwrap().as_ref().and_then(|m| m.get(&key)) {
        return known.clone();
    }
    let answer = py.detach(|| ask_main(name.clone(), origin.clone()));
    ANSWERS.lock().unwrap().get_or_insert_with(HashMap::new).insert(key, answer.clone());
    answer
}

fn ask_main(name: String, origin: String) -> Option<String> {
    let Some(questions) = QUESTIONS.get() else {
        return Some(format!("cannot check extension module {name}: Python is not set up"));
    };
    let (tx, rx) = crossbeam_channel::bounded(1);
    if questions.send(Probe { name: name.clone(), origin, answer: tx }).is_err() {
        return Some(format!("cannot check extension module {name}: the main interpreter does not answer"));
    }
    rx.recv_timeout(PROBE_WAIT).unwrap_or_else(|_| {
        Some(format!("cannot check extension module {name}: the main interpreter did not answer within {} s", PROBE_WAIT.as_secs()))
    })
}

/// Answer one question, attached to the main interpreter.
pub fn answer(py: Python<'_>, probe: Probe) {
    let verdict = check(py, &probe.name, &probe.origin);
    let _ = probe.answer.send(verdict);
}

fn check(py: Python<'_>, name: &str, origin: &str) -> Option<String> {
    let module = match load_in_main(py, name, origin) {
        Ok(m) => m,
        Err(e) => {
            return Some(format!(
                "cannot load extension module {name} in a sub-interpreter: loading it in the main interpreter to check it failed: {e}"
            ))
        }
    };
    // SAFETY: attached to the main interpreter; `module` is a live object there.
    // `PyModule_GetDef` answers NULL (and may set an error) for a module without one.
    let def = unsafe { ffi::PyModule_GetDef(module.as_ptr()) };
    if def.is_null() {
        let _ = PyErr::take(py);
        return Some(format!("cannot load extension module {name} in a sub-interpreter: it has no module definition"));
    }
    // SAFETY: `def` is the module's definition, static data of the extension, which
    // stays loaded.
    let multi_phase = unsafe { !(*def).m_slots.is_null() };
    if multi_phase {
        None
    } else {
        Some(format!(
            "module {name} does not support sub-interpreters (it uses single-phase initialisation); use it from a worker context"
        ))
    }
}

/// The extension as the main interpreter has it: imported by name, or from its file
/// when the name does not lead there (a path only the sub-interpreter had added).
fn load_in_main<'py>(py: Python<'py>, name: &str, origin: &str) -> PyResult<Bound<'py, PyAny>> {
    let by_name = py.import("importlib")?.call_method1("import_module", (name,));
    match by_name {
        Ok(m) if m.getattr("__file__").ok().and_then(|f| f.extract::<String>().ok()).as_deref() == Some(origin) => Ok(m),
        _ => {
            let util = py.import("importlib.util")?;
            let spec = util.call_method1("spec_from_file_location", (name, origin))?;
            let module = util.call_method1("module_from_spec", (&spec,))?;
            spec.getattr("loader")?.call_method1("exec_module", (&module,))?;
            Ok(module)
        }
    }
}

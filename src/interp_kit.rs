//! The kit: the Python classes the core converts and raises with (`erlang.Pid`, `Ref`,
//! `Atom`, `SharedDict` and the exceptions `Interrupted`, `ErlangError`, `ProcessError`),
//! as the interpreter running the current thread has them.
//!
//! The shim defines the classes in Python (python/erlang_shim/_types.py), so every
//! interpreter has its own. They are registered once per interpreter, when it is set up
//! (`erlang_module::install`), in the interpreter's own state dict
//! (`PyInterpreterState_GetDict`), never in a process-wide static: a lookup made under an
//! interpreter's GIL can only find that interpreter's classes. A context thread belongs to
//! one interpreter for its whole life, so it keeps its interpreter's kit in a thread-local
//! while it serves (`enter_context`/`leave_context`), which makes a lookup a thread-local
//! read, a comparison of the interpreter and a reference count; other threads (the
//! user's own, the interrupter) and other interpreters read the state dict each time.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple, PyType};
use std::cell::RefCell;

// A `Py<T>` dropped detached must never reach pyo3's process-wide reference pool (see
// .cargo/config.toml and docs/runtime.md, "One erlang module per interpreter").
#[cfg(not(all(pyo3_disable_reference_pool, pyo3_leak_on_drop_without_reference_pool)))]
compile_error!("build with the rustflags of .cargo/config.toml (run cargo from the repository root)");

/// Key of the registered classes (a tuple, in `Class` order) in the interpreter's dict.
const KIT_KEY: &str = "erlang_python.kit";

/// The classes of the kit, in the order the registry keeps them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Class {
    Pid,
    Ref,
    Atom,
    SharedDict,
    Interrupted,
    ErlangError,
    ProcessError,
}

impl Class {
    const ALL: [Class; 7] =
        [Class::Pid, Class::Ref, Class::Atom, Class::SharedDict, Class::Interrupted, Class::ErlangError, Class::ProcessError];

    /// The name the shim gives the class (`erlang_shim._kit_types()`).
    fn name(self) -> &'static str {
        match self {
            Class::Pid => "Pid",
            Class::Ref => "Ref",
            Class::Atom => "Atom",
            Class::SharedDict => "SharedDict",
            Class::Interrupted => "Interrupted",
            Class::ErlangError => "ErlangError",
            Class::ProcessError => "ProcessError",
        }
    }
}

/// The kit a context thread keeps, with the interpreter it belongs to.
struct KeptKit {
    /// The id of the classes' interpreter, compared on each use: a thread may run another
    /// interpreter for a while (Python code can run a sub-interpreter on the calling
    /// thread), and then the kit is looked up there.
    interpreter: crate::interp::InterpreterId,
    classes: Vec<Py<PyType>>,
}

thread_local! {
    /// The kit of the interpreter whose context runs on this thread (`None` elsewhere).
    /// Filled and emptied with the thread attached, so its references are taken and given
    /// back under the GIL of the interpreter they belong to.
    static CONTEXT_KIT: RefCell<Option<KeptKit>> = const { RefCell::new(None) };
}

/// The state dict of the interpreter running this thread.
fn interpreter_dict(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    // SAFETY: the thread is attached (`py`), so it has a current interpreter; its dict is
    // a borrowed reference that lives as long as the interpreter (NULL only on failure).
    let dict = unsafe {
        let ptr = pyo3::ffi::PyInterpreterState_GetDict(pyo3::ffi::PyInterpreterState_Get());
        Bound::from_borrowed_ptr_or_err(py, ptr)?
    };
    Ok(dict.cast_into::<PyDict>()?)
}

/// Record the interpreter's classes, given by name (`erlang_shim._kit_types()`). Set
/// once: the classes Python code sees must stay the ones the core converts with.
pub fn register(py: Python<'_>, by_name: &Bound<'_, PyAny>) -> PyResult<()> {
    let state = interpreter_dict(py)?;
    if state.contains(KIT_KEY)? {
        return Ok(());
    }
    let by_name = by_name.cast::<PyDict>()?;
    let mut classes = Vec::with_capacity(Class::ALL.len());
    for class in Class::ALL {
        let found = by_name
            .get_item(class.name())?
            .ok_or_else(|| PyRuntimeError::new_err(format!("the erlang shim defines no class {}", class.name())))?;
        classes.push(found.cast_into::<PyType>()?);
    }
    state.set_item(KIT_KEY, PyTuple::new(py, classes)?)
}

/// The registered classes of the interpreter running this thread.
fn registered(py: Python<'_>) -> PyResult<Bound<'_, PyTuple>> {
    let found = interpreter_dict(py)?
        .get_item(KIT_KEY)?
        .ok_or_else(|| PyRuntimeError::new_err("the erlang module is not installed in this interpreter"))?;
    Ok(found.cast_into::<PyTuple>()?)
}

/// A context starts serving on this thread: keep its interpreter's kit at hand.
pub fn enter_context(py: Python<'_>) -> PyResult<()> {
    let classes = registered(py)?
        .iter()
        .map(|class| Ok(class.cast_into::<PyType>()?.unbind()))
        .collect::<PyResult<Vec<_>>>()?;
    let kept = KeptKit { interpreter: crate::interp::current_id(py), classes };
    let previous = CONTEXT_KIT.with(|kit| kit.replace(Some(kept)));
    drop(previous);
    Ok(())
}

/// The context leaves this thread (call it attached: the kit's references go back now).
pub fn leave_context() {
    let previous = CONTEXT_KIT.with(|kit| kit.take());
    drop(previous);
}

/// `class` as the interpreter running this thread has it.
pub fn get(py: Python<'_>, class: Class) -> PyResult<Bound<'_, PyType>> {
    let here = crate::interp::current_id(py);
    let kept = CONTEXT_KIT.with(|kit| {
        let kit = kit.borrow();
        let kit = kit.as_ref().filter(|k| k.interpreter == here)?;
        Some(kit.classes[class as usize].bind(py).clone())
    });
    match kept {
        Some(found) => Ok(found),
        None => Ok(registered(py)?.get_item(class as usize)?.cast_into::<PyType>()?),
    }
}

/// Which of `candidates` `obj`'s exact type is, if any (one lookup for all of them; the
/// value classes cannot be subclassed).
pub fn exact_class_of(obj: &Bound<'_, PyAny>, candidates: &[Class]) -> PyResult<Option<Class>> {
    let ty = obj.get_type();
    let here = crate::interp::current_id(obj.py());
    let kept = CONTEXT_KIT.with(|kit| {
        let kit = kit.borrow();
        let kit = kit.as_ref().filter(|k| k.interpreter == here)?;
        Some(candidates.iter().copied().find(|c| kit.classes[*c as usize].as_ptr() == ty.as_ptr()))
    });
    match kept {
        Some(found) => Ok(found),
        None => {
            let classes = registered(obj.py())?;
            Ok(candidates.iter().copied().find(|c| classes.get_item(*c as usize).is_ok_and(|k| k.is(&ty))))
        }
    }
}

/// An exception of the kit's class `class` (`Interrupted`, `ErlangError`, `ProcessError`)
/// with `message`; the lookup's own error when the kit is missing.
pub fn error(py: Python<'_>, class: Class, message: impl Into<String>) -> PyErr {
    match get(py, class) {
        Ok(ty) => PyErr::from_type(ty, message.into()),
        Err(err) => err,
    }
}

/// Whether `err` is an `erlang.Interrupted` of this interpreter.
pub fn is_interrupted(py: Python<'_>, err: &PyErr) -> bool {
    get(py, Class::Interrupted).is_ok_and(|ty| err.is_instance(py, &ty))
}

//! Values of the kit's classes (`interp_kit`): making an `erlang.Pid`, `Ref` or
//! `SharedDict` for an Erlang value, and reading one back. The classes are the shim's
//! (python/erlang_shim/_types.py); what the core keeps inside them is plain data (the
//! external term format of a pid or reference) or a capsule (a shared dict's handle).
//!
//! Capsules are sound in any interpreter: `PyCapsule_Type` is a static built-in type
//! (no per-interpreter type object to mix up), a capsule holds no Python object, only a
//! Rust value that is `Send` and owns no Python reference (a `ResourceArc`, an
//! OpenTelemetry context), and its destructor runs where the capsule dies: in the
//! interpreter that made it, with that interpreter's GIL, and it only releases that Rust
//! value, which any thread may do.

use crate::interp_kit::{self, Class};
use crate::state::SharedDictRes;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCapsule, PyCapsuleMethods};
use rustler::ResourceArc;
use std::ffi::CStr;

/// The name a shared dict's capsule carries; a capsule of any other name is refused.
const SHARED_DICT_CAPSULE: &CStr = c"erlang_python.SharedDict";

/// An `erlang.Pid` holding `etf`, the external format of a local pid.
pub fn new_pid<'py>(py: Python<'py>, etf: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    interp_kit::get(py, Class::Pid)?.call_method1("_from_etf", (PyBytes::new(py, etf),))
}

/// An `erlang.Ref` holding `etf`, the external format of a reference.
pub fn new_ref<'py>(py: Python<'py>, etf: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    interp_kit::get(py, Class::Ref)?.call_method1("_from_etf", (PyBytes::new(py, etf),))
}

/// The external format an `erlang.Pid` or `erlang.Ref` holds.
pub fn etf_of<'py>(value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    Ok(value.getattr("_etf")?.cast_into::<PyBytes>()?)
}

/// The external format of `value` if it is an `erlang.Pid` of this interpreter.
pub fn pid_etf<'py>(value: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyBytes>>> {
    match interp_kit::exact_class_of(value, &[Class::Pid])? {
        Some(_) => Ok(Some(etf_of(value)?)),
        None => Ok(None),
    }
}

/// A capsule holding a handle of the shared dict (what `erlang.SharedDict` wraps).
pub fn shared_dict_capsule(py: Python<'_>, handle: ResourceArc<SharedDictRes>) -> PyResult<Bound<'_, PyCapsule>> {
    PyCapsule::new_with_value(py, handle, SHARED_DICT_CAPSULE)
}

/// An `erlang.SharedDict` for `handle`.
pub fn new_shared_dict(py: Python<'_>, handle: ResourceArc<SharedDictRes>) -> PyResult<Bound<'_, PyAny>> {
    let capsule = shared_dict_capsule(py, handle)?;
    interp_kit::get(py, Class::SharedDict)?.call_method1("_wrap", (capsule,))
}

/// The shared dict a capsule made by `shared_dict_capsule` holds (a new handle of it).
pub fn shared_dict_handle(capsule: &Bound<'_, PyAny>) -> PyResult<ResourceArc<SharedDictRes>> {
    let capsule = capsule
        .cast::<PyCapsule>()
        .map_err(|_| PyTypeError::new_err("not a SharedDict handle"))?;
    let pointer = capsule.pointer_checked(Some(SHARED_DICT_CAPSULE))?;
    // SAFETY: a capsule of this name is only made by `shared_dict_capsule`, from a boxed
    // `ResourceArc<SharedDictRes>` that lives until the capsule is destroyed, and the
    // capsule is alive while borrowed here; the handle is cloned before the borrow ends.
    let handle = unsafe { pointer.cast::<ResourceArc<SharedDictRes>>().as_ref() };
    Ok(handle.clone())
}

/// The shared dict an `erlang.SharedDict` stands for.
pub fn shared_dict_of(value: &Bound<'_, PyAny>) -> PyResult<ResourceArc<SharedDictRes>> {
    shared_dict_handle(&value.getattr("_handle")?)
}

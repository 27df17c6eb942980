//! Python object -> Erlang term.

use super::atoms::bounded_atom;
use super::bigint::big_py_to_term;
use super::depth::nested;
use super::{ConvError, ConvOpts};
use crate::atoms;
use crate::interp_kit::{self, Class};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyComplex, PyDict, PyFloat, PyFrozenSet, PyInt, PyList,
    PyMemoryView, PySet, PyString, PyTuple,
};
use rustler::types::tuple::make_tuple;
use rustler::{Encoder, Env, NewBinary, Term};

/// The default conversion (2.3.1's): for values Python code hands over (`erlang.send`,
/// state, callback arguments), never strict.
pub fn py_to_term<'a>(env: Env<'a>, obj: &Bound<'_, PyAny>) -> Result<Term<'a>, ConvError> {
    convert(env, obj, ConvOpts::default())
}

/// A request's result, converted as its options ask.
pub fn py_to_term_with<'a>(env: Env<'a>, obj: &Bound<'_, PyAny>, opts: ConvOpts) -> Result<Term<'a>, ConvError> {
    convert(env, obj, opts)
}

/// Every value converted, whether a container's item or what a protocol (`tolist()`, a
/// set's list) gave, goes through here and so counts one level.
fn convert<'a>(env: Env<'a>, obj: &Bound<'_, PyAny>, opts: ConvOpts) -> Result<Term<'a>, ConvError> {
    nested(|| convert_level(env, obj, opts))
}

fn convert_level<'a>(env: Env<'a>, obj: &Bound<'_, PyAny>, opts: ConvOpts) -> Result<Term<'a>, ConvError> {
    let py = obj.py();
    if obj.is_none() {
        return Ok(atoms::none().encode(env));
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(b.is_true().encode(env));
    }
    if obj.is_exact_instance_of::<PyString>() {
        return Ok(str_to_binary(env, obj.cast::<PyString>().unwrap())?);
    }
    if let Ok(i) = obj.cast::<PyInt>() {
        return Ok(match i.extract::<i64>() {
            Ok(v) => v.encode(env),
            Err(_) => big_py_to_term(env, i)?,
        });
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(float_to_term(env, f.value()));
    }
    if let Ok(list) = obj.cast::<PyList>() {
        let mut items = Vec::with_capacity(list.len());
        let mut i = 0;
        // Re-read the length each step: a __str__ called below may mutate the list.
        while i < list.len() {
            items.push(convert(env, &list.get_item(i)?, opts)?);
            i += 1;
        }
        return Ok(items.encode(env));
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        let mut items = Vec::with_capacity(tuple.len());
        for item in tuple.iter() {
            items.push(convert(env, &item, opts)?);
        }
        return Ok(make_tuple(env, &items));
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        return dict_to_map(env, dict, opts);
    }
    if let Ok(s) = obj.cast::<PyString>() {
        // An exact `str` is never an Atom: only subclasses need the (per-context) class.
        if !obj.is_exact_instance_of::<PyString>() && obj.is_instance(interp_kit::get(py, Class::Atom)?.as_any())? {
            return Ok(bounded_atom(env, s.to_str()?));
        }
        return Ok(str_to_binary(env, s)?);
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(bytes_to_binary(env, b.as_bytes()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        // SAFETY: no Python runs while the bytes are copied, so the buffer cannot be
        // resized or freed meanwhile.
        return Ok(bytes_to_binary(env, unsafe { b.as_bytes() }));
    }
    if obj.cast::<PyMemoryView>().is_ok() {
        let copy = obj.call_method0("tobytes")?;
        return Ok(bytes_to_binary(env, copy.cast::<PyBytes>().unwrap().as_bytes()));
    }
    // The kit's value classes, after every built-in type (they are rarer), by exact type.
    match interp_kit::exact_class_of(obj, &[Class::Pid, Class::Ref, Class::SharedDict])? {
        Some(Class::SharedDict) => return Ok(crate::pytypes::shared_dict_of(obj)?.encode(env)),
        Some(class) => return etf_to_term(env, crate::pytypes::etf_of(obj)?.as_bytes(), class),
        None => {}
    }
    if obj.cast::<PySet>().is_ok() || obj.cast::<PyFrozenSet>().is_ok() {
        // A snapshot, as for dicts; its items are this set's children (one level, not two).
        let snapshot = PyList::type_object(py).call1((obj,))?;
        let mut items = Vec::new();
        for item in snapshot.cast::<PyList>().map_err(PyErr::from)?.iter() {
            items.push(convert(env, &item, opts)?);
        }
        return Ok(items.encode(env));
    }
    if opts.strict {
        if let Ok(c) = obj.cast::<PyComplex>() {
            let parts = (super::complex(), float_to_term(env, c.real()), float_to_term(env, c.imag()));
            return Ok(parts.encode(env));
        }
    }
    if opts.arrays {
        if let Some(array) = super::arrays::array_to_term(env, obj)? {
            return Ok(array);
        }
    }
    if is_numpy_value(obj) {
        // ndarray.tolist() gives nested lists; a numpy scalar's gives the Python scalar.
        // Whatever it gives is converted one level down: an object array's tolist() may
        // give the array itself back.
        let plain = obj.call_method0("tolist")?;
        // A scalar numpy cannot make plain (`longdouble`, `clongdouble`) gives a copy of
        // itself: no progress, so it is "anything else". The array itself (a 0-d object
        // array holding itself) is data, and meets the depth limit.
        if !plain.is(obj) && plain.get_type().is(obj.get_type()) {
            return printed(env, obj, opts);
        }
        return convert(env, &plain, opts);
    }
    printed(env, obj, opts)
}

/// A value with no Erlang counterpart: its `str()`, or in strict mode the failure
/// naming its type.
fn printed<'a>(env: Env<'a>, obj: &Bound<'_, PyAny>, opts: ConvOpts) -> Result<Term<'a>, ConvError> {
    if opts.strict {
        return Err(ConvError::Unconvertible(type_name(obj)));
    }
    Ok(str_to_binary(env, &obj.str()?)?)
}

/// `module.QualName` of the value's type; builtins (`object`, `complex`) unqualified.
fn type_name(obj: &Bound<'_, PyAny>) -> String {
    let ty = obj.get_type();
    let qualname = ty.qualname().map(|n| n.to_string()).unwrap_or_else(|_| "object".to_owned());
    match type_module(&ty) {
        Some(module) if module != "builtins" => format!("{module}.{qualname}"),
        _ => qualname,
    }
}

/// The `__module__` of a type. Not `PyTypeMethods::module`, which before Python 3.13 reads
/// it through a process-wide `intern!` (see docs/runtime.md, "One erlang module per
/// interpreter").
fn type_module(ty: &Bound<'_, pyo3::types::PyType>) -> Option<String> {
    let module = ty.getattr("__module__").ok()?;
    Some(module.cast::<PyString>().ok()?.to_str().ok()?.to_owned())
}

use pyo3::type_object::PyTypeInfo;

fn is_numpy_value(obj: &Bound<'_, PyAny>) -> bool {
    type_module(&obj.get_type()).is_some_and(|m| m == "numpy") && obj.hasattr("tolist").unwrap_or(false)
}

pub(super) fn float_to_term(env: Env, v: f64) -> Term {
    if v.is_nan() {
        atoms::nan().encode(env)
    } else if v == f64::INFINITY {
        atoms::infinity().encode(env)
    } else if v == f64::NEG_INFINITY {
        atoms::neg_infinity().encode(env)
    } else {
        v.encode(env)
    }
}

fn str_to_binary<'a>(env: Env<'a>, s: &Bound<'_, PyString>) -> PyResult<Term<'a>> {
    Ok(bytes_to_binary(env, s.to_str()?.as_bytes()))
}

pub fn bytes_to_binary<'a>(env: Env<'a>, data: &[u8]) -> Term<'a> {
    let mut bin = NewBinary::new(env, data.len());
    bin.as_mut_slice().copy_from_slice(data);
    bin.into()
}

/// The pid or reference an `erlang.Pid` or `erlang.Ref` holds. Only the core makes
/// them, but Python code can reach their bytes: anything that is not one whole term of
/// the class's kind (decoded safely, so no new atom) is refused.
fn etf_to_term<'a>(env: Env<'a>, etf: &[u8], class: Class) -> Result<Term<'a>, ConvError> {
    let expected = if class == Class::Pid { rustler::TermType::Pid } else { rustler::TermType::Ref };
    match env.binary_to_term(etf) {
        Some((term, used)) if used == etf.len() && term.get_type() == expected => Ok(term),
        _ => Err(ConvError::Python(pyo3::exceptions::PyValueError::new_err("bad term"))),
    }
}

/// Erlang's largest "flat" map; bigger maps are hash array mapped tries.
const FLATMAP_MAX_KEYS: usize = 32;

fn dict_to_map<'a>(env: Env<'a>, dict: &Bound<'_, PyDict>, opts: ConvOpts) -> Result<Term<'a>, ConvError> {
    // Iterate a snapshot: a __str__ run during conversion may mutate the dict.
    let items = dict.items();
    let mut keys = Vec::with_capacity(items.len());
    let mut values = Vec::with_capacity(items.len());
    for pair in items.iter() {
        let pair = pair.cast::<PyTuple>().map_err(PyErr::from)?;
        keys.push(convert(env, &pair.get_item(0)?, opts)?);
        values.push(convert(env, &pair.get_item(1)?, opts)?);
    }
    // OTP 25's enif_make_map_from_arrays crashes the VM for more than 32 keys in a
    // process-independent environment (where every reply is built), so there large maps
    // are built one key at a time.
    if keys.len() <= FLATMAP_MAX_KEYS || !crate::vm_release::big_maps_need_process_env() {
        if let Ok(map) = Term::map_from_arrays(env, &keys, &values) {
            return Ok(map);
        }
    }
    // Distinct Python keys can meet as one Erlang key ('a' and b'a'): the last one wins.
    let mut map = Term::map_new(env);
    for (k, v) in keys.into_iter().zip(values) {
        map = map.map_put(k, v).map_err(|_| ConvError::Unsupported(k.as_c_arg()))?;
    }
    Ok(map)
}

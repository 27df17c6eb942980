//! The numeric-array fast path (`arrays => binary`): an object exposing the buffer
//! protocol, or `__array__` (numpy arrays and what numpy can view, `array.array`), becomes
//! `{py_array, DType, Shape, Data}` in one copy of its memory, instead of one Erlang term
//! per element. `DType` is numpy's name (`<<"float64">>`), `Shape` a list of dimensions,
//! `Data` the elements in C (row-major) order and the machine's byte order.

use super::{py_array, ConvError};
use pyo3::buffer::PyUntypedBuffer;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use rustler::{Encoder, Env, NewBinary, Term};

/// The array term, or `None` when `obj` is not a numeric array (no buffer, an element
/// type that is not a number, zero dimensions): it then converts as usual.
pub fn array_to_term<'a>(env: Env<'a>, obj: &Bound<'_, PyAny>) -> Result<Option<Term<'a>>, ConvError> {
    let buffer = match PyUntypedBuffer::get(obj) {
        Ok(buffer) => buffer,
        Err(_) => match from_array_protocol(obj)? {
            Some(buffer) => buffer,
            None => return Ok(None),
        },
    };
    let Some(dtype) = dtype_name(buffer.format().to_bytes(), buffer.item_size()) else {
        return Ok(None);
    };
    if buffer.dimensions() == 0 {
        return Ok(None);
    }
    let shape: Vec<usize> = buffer.shape().to_vec();
    let data = if buffer.is_c_contiguous() {
        // SAFETY: the buffer is held (not released) until after the copy, its memory is
        // `len_bytes` long and C-contiguous, and no Python code runs while it is copied,
        // so nothing can resize or free it meanwhile (an exporter must not while a buffer
        // is held). A thread that released the GIL may still write the items: the copy
        // then holds a mix of old and new values, as numpy's own copies would.
        let src = unsafe { std::slice::from_raw_parts(buffer.buf_ptr() as *const u8, buffer.len_bytes()) };
        copy_to_binary(env, src)
    } else {
        // Strided (a transposed or sliced view): memoryview puts it in C order.
        let mv = obj.py().import("builtins")?.getattr("memoryview")?.call1((buffer.obj(obj.py()).unwrap_or(obj),))?;
        let bytes = mv.call_method0("tobytes")?;
        copy_to_binary(env, bytes.cast::<PyBytes>().map_err(PyErr::from)?.as_bytes())
    };
    buffer.release(obj.py());
    Ok(Some((py_array(), dtype, shape, data).encode(env)))
}

fn copy_to_binary<'a>(env: Env<'a>, data: &[u8]) -> Term<'a> {
    let mut bin = NewBinary::new(env, data.len());
    bin.as_mut_slice().copy_from_slice(data);
    bin.into()
}

/// A buffer of what `obj.__array__()` gives, for array-likes that are no buffers
/// themselves. Only numpy defines the protocol's result, so it must be an ndarray.
fn from_array_protocol(obj: &Bound<'_, PyAny>) -> Result<Option<PyUntypedBuffer>, ConvError> {
    if !obj.hasattr("__array__").unwrap_or(false) {
        return Ok(None);
    }
    let array = obj.call_method0("__array__")?;
    let is_ndarray = array.get_type().name().map(|n| n == "ndarray").unwrap_or(false);
    if !is_ndarray {
        return Ok(None);
    }
    Ok(PyUntypedBuffer::get(&array).ok())
}

/// numpy's name for a buffer element (a `struct` format with an optional byte-order
/// prefix); `None` for anything but a single number (records, objects, pointers).
/// Only the native byte order is taken: the data is copied as it is.
fn dtype_name(format: &[u8], item_size: usize) -> Option<&'static str> {
    let code = match format {
        [b'@' | b'=', rest @ ..] => rest,
        [b'<', rest @ ..] if cfg!(target_endian = "little") => rest,
        [b'>' | b'!', rest @ ..] if cfg!(target_endian = "big") => rest,
        [b'<' | b'>' | b'!', ..] => return None,
        other => other,
    };
    // `l`, `L`, `q`... name C types whose size varies: the item size decides.
    let int = |signed: bool| match (signed, item_size) {
        (true, 1) => Some("int8"),
        (true, 2) => Some("int16"),
        (true, 4) => Some("int32"),
        (true, 8) => Some("int64"),
        (false, 1) => Some("uint8"),
        (false, 2) => Some("uint16"),
        (false, 4) => Some("uint32"),
        (false, 8) => Some("uint64"),
        _ => None,
    };
    match code {
        b"b" | b"h" | b"i" | b"l" | b"q" | b"n" => int(true),
        b"B" | b"H" | b"I" | b"L" | b"Q" | b"N" => int(false),
        b"?" if item_size == 1 => Some("bool"),
        b"e" if item_size == 2 => Some("float16"),
        b"f" if item_size == 4 => Some("float32"),
        b"d" if item_size == 8 => Some("float64"),
        b"Zf" if item_size == 8 => Some("complex64"),
        b"Zd" if item_size == 16 => Some("complex128"),
        _ => None,
    }
}

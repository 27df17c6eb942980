//! Integers beyond 64 bits cross through the external term format: Erlang's bignum
//! digits are little-endian bytes, which Python's `int.from_bytes` reads directly.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt};
use rustler::{Env, Term};

const VERSION: u8 = 131;
const SMALL_BIG_EXT: u8 = 110;
const LARGE_BIG_EXT: u8 = 111;

/// Python int from an Erlang integer that did not fit in 64 bits.
pub fn big_term_to_py<'py>(py: Python<'py>, term: Term) -> Option<Bound<'py, PyAny>> {
    let etf = term.to_binary();
    let bytes = etf.as_slice();
    let (sign, digits) = match *bytes.get(1)? {
        SMALL_BIG_EXT => {
            let n = *bytes.get(2)? as usize;
            (*bytes.get(3)?, bytes.get(4..4 + n)?)
        }
        LARGE_BIG_EXT => {
            let n = u32::from_be_bytes(bytes.get(2..6)?.try_into().ok()?) as usize;
            (*bytes.get(6)?, bytes.get(7..7 + n)?)
        }
        _ => return None,
    };
    let int_type = py.get_type::<PyInt>();
    let magnitude = int_type
        .call_method1("from_bytes", (PyBytes::new(py, digits), "little"))
        .ok()?;
    if sign == 0 {
        Some(magnitude)
    } else {
        magnitude.neg().ok()
    }
}

/// Erlang integer from a Python int that does not fit in 64 bits.
pub fn big_py_to_term<'a>(env: Env<'a>, value: &Bound<'_, PyAny>) -> PyResult<Term<'a>> {
    let negative = value.lt(0)?;
    let magnitude = if negative { value.neg()? } else { value.clone() };
    let bits: usize = magnitude.call_method0("bit_length")?.extract()?;
    let n = bits.div_ceil(8);
    let digits = magnitude.call_method1("to_bytes", (n, "little"))?;
    let digits = digits.cast::<PyBytes>()?.as_bytes();
    let mut etf = Vec::with_capacity(n + 7);
    etf.push(VERSION);
    if n <= 255 {
        etf.extend_from_slice(&[SMALL_BIG_EXT, n as u8]);
    } else {
        etf.push(LARGE_BIG_EXT);
        etf.extend_from_slice(&(n as u32).to_be_bytes());
    }
    etf.push(negative as u8);
    etf.extend_from_slice(digits);
    env.binary_to_term(&etf)
        .map(|(t, _)| t)
        .ok_or_else(|| pyo3::exceptions::PyOverflowError::new_err("integer too large for Erlang"))
}

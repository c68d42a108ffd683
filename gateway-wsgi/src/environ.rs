//! The `environ` dict of one request.

use gateway_core::{Environ, Protocol};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use pyo3::{PyTypeInfo, intern};

use crate::file_wrapper::FileWrapper;
use crate::pool::Context;

/// Every variable of `env` as latin-1 `str`, plus the `wsgi.*` keys.
pub(crate) fn build<'py>(
    py: Python<'py>,
    ctx: &Context,
    env: &Environ,
    input: Bound<'py, PyAny>,
    errors: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (name, value) in env.iter() {
        dict.set_item(latin1(py, name), latin1(py, value))?;
    }
    // PEP 3333 lets these be absent; apps and wsgiref.validate expect them.
    for key in [
        intern!(py, "SCRIPT_NAME"),
        intern!(py, "PATH_INFO"),
        intern!(py, "QUERY_STRING"),
    ] {
        if !dict.contains(key)? {
            dict.set_item(key, intern!(py, ""))?;
        }
    }
    dict.set_item(intern!(py, "wsgi.version"), (1, 0))?;
    dict.set_item(intern!(py, "wsgi.url_scheme"), env.url_scheme())?;
    dict.set_item(intern!(py, "wsgi.input"), input)?;
    dict.set_item(intern!(py, "wsgi.errors"), errors)?;
    dict.set_item(intern!(py, "wsgi.multithread"), ctx.multithread)?;
    dict.set_item(intern!(py, "wsgi.multiprocess"), ctx.multiprocess)?;
    dict.set_item(
        intern!(py, "wsgi.run_once"),
        env.protocol() == Protocol::Cgi,
    )?;
    dict.set_item(intern!(py, "wsgi.input_terminated"), true)?;
    dict.set_item(
        intern!(py, "wsgi.file_wrapper"),
        FileWrapper::type_object(py),
    )?;
    Ok(dict)
}

/// Bytes as a `str` of the same code points (PEP 3333's "native strings"), so any byte, UTF-8
/// or not, comes back unchanged from `s.encode("latin-1")`.
pub(crate) fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    match std::str::from_utf8(bytes) {
        Ok(ascii) if ascii.is_ascii() => PyString::new(py, ascii),
        _ => PyString::new(
            py,
            &bytes.iter().map(|&b| char::from(b)).collect::<String>(),
        ),
    }
}

//! The `environ` dict of one request.

use std::collections::HashMap;

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
    names: &mut Names,
    env: &Environ,
    input: Bound<'py, PyAny>,
    errors: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (name, value) in env.iter() {
        dict.set_item(names.get(py, name), latin1(py, value))?;
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

/// The variable names a Python thread has seen, as `str` objects kept from one request to
/// the next: a key made once hashes once. Bounded, since header names are the client's to
/// choose; past the bound a name is made afresh each time.
#[derive(Default)]
pub(crate) struct Names(HashMap<Box<[u8]>, Py<PyString>>);

/// Names kept per thread: the CGI variables and the headers clients commonly send fit.
const MAX_NAMES: usize = 128;

impl Names {
    fn get<'py>(&mut self, py: Python<'py>, name: &[u8]) -> Bound<'py, PyString> {
        if let Some(s) = self.0.get(name) {
            return s.bind(py).clone();
        }
        let s = latin1(py, name);
        if self.0.len() < MAX_NAMES {
            self.0.insert(name.into(), s.clone().unbind());
        }
        s
    }
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

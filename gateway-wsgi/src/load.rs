//! Importing the app: `sys.path`, the virtualenv, `module:callable`, and errors that carry
//! the Python traceback.

use std::fmt;
use std::path::Path;

use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::WsgiConfig;

/// Why an app could not be loaded: the message, then the Python traceback when there is one.
#[derive(Debug)]
pub struct LoadError(String);

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LoadError {}

impl LoadError {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        LoadError(msg.into())
    }

    fn python(py: Python<'_>, msg: String, e: &PyErr) -> Self {
        LoadError(format!("{msg}\n{}", traceback(py, e).trim_end()))
    }
}

/// Sets up `sys.path` and returns the app's callable.
pub(crate) fn import(py: Python<'_>, cfg: &WsgiConfig) -> Result<Py<PyAny>, LoadError> {
    let (module, attr) = cfg
        .module
        .split_once(':')
        .unwrap_or((cfg.module.as_str(), "application"));
    let dotted = |s: &str| {
        s.split('.')
            .all(|p| !p.is_empty() && !p.contains([':', '/', ' ']))
    };
    if !dotted(module) || !dotted(attr) {
        return Err(LoadError::new(format!(
            "module {:?} is not \"package.module:callable\"",
            cfg.module
        )));
    }
    set_up_path(py, cfg)?;

    let mut obj = py
        .import(module)
        .map_err(|e| {
            let msg = match e.is_instance_of::<pyo3::exceptions::PyModuleNotFoundError>(py) {
                true => format!("module {module:?} not found (sys.path: {})", sys_path(py)),
                false => format!("importing module {module:?} raised an exception"),
            };
            LoadError::python(py, msg, &e)
        })?
        .into_any();
    for part in attr.split('.') {
        obj = obj.getattr(part).map_err(|e| {
            LoadError::python(
                py,
                format!("module {module:?} has no attribute {attr:?}"),
                &e,
            )
        })?;
    }
    if !obj.is_callable() {
        let kind = obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default();
        return Err(LoadError::new(format!(
            "{module}:{attr} is a {kind}, not a callable"
        )));
    }
    Ok(obj.unbind())
}

/// `python_path` first, then the virtualenv's site-packages, then the system's.
fn set_up_path(py: Python<'_>, cfg: &WsgiConfig) -> Result<(), LoadError> {
    let fail = |e: PyErr| LoadError::python(py, "setting up sys.path failed".into(), &e);
    let sys = py.import("sys").map_err(fail)?;
    // An embedded interpreter has no argv; some libraries read sys.argv[0].
    if !sys.hasattr("argv").map_err(fail)?
        || sys.getattr("argv").map_err(fail)?.len().ok() == Some(0)
    {
        sys.setattr("argv", vec!["gatewayd"]).map_err(fail)?;
    }
    // A print() must not reach the response: as a CGI program, stdout is the response. It
    // goes to stderr, the log's stream, in every mode.
    if sys
        .getattr("stdout")
        .map_err(fail)?
        .is(&sys.getattr("__stdout__").map_err(fail)?)
    {
        sys.setattr("stdout", sys.getattr("stderr").map_err(fail)?)
            .map_err(fail)?;
    }
    let path = sys
        .getattr("path")
        .and_then(|p| Ok(p.cast_into::<PyList>()?))
        .map_err(fail)?;
    let mut front = Vec::new();
    for dir in &cfg.python_path {
        if !dir.is_dir() {
            return Err(LoadError::new(format!(
                "python_path entry {} is not a directory",
                dir.display()
            )));
        }
        front.push(dir.display().to_string());
    }
    if let Some(venv) = &cfg.virtualenv {
        front.extend(venv_site_packages(py, venv, &sys, &path)?);
    }
    for dir in front.iter().rev() {
        let already = path.index(dir.as_str()).ok();
        if let Some(i) = already {
            path.del_item(i).map_err(fail)?;
        }
        path.insert(0, dir).map_err(fail)?;
    }
    Ok(())
}

/// The entries `site.addsitedir` adds for the virtualenv (its site-packages and what its
/// `.pth` files name), taken back off the end of `sys.path` so that they can go first.
fn venv_site_packages(
    py: Python<'_>,
    venv: &Path,
    sys: &Bound<'_, PyModule>,
    path: &Bound<'_, PyList>,
) -> Result<Vec<String>, LoadError> {
    let fail = |e: PyErr| LoadError::python(py, "setting up the virtualenv failed".into(), &e);
    let version = sys.getattr("version_info").map_err(fail)?;
    let part = |name: &str| -> Result<u8, LoadError> {
        version
            .getattr(name)
            .and_then(|v| v.extract())
            .map_err(fail)
    };
    let (major, minor) = (part("major")?, part("minor")?);
    let site = venv.join(format!("lib/python{major}.{minor}/site-packages"));
    if !site.is_dir() {
        return Err(LoadError::new(format!(
            "virtualenv {} has no {} (is it a Python {major}.{minor} virtualenv?)",
            venv.display(),
            site.display()
        )));
    }
    let before = path.len();
    let added = (|| {
        py.import("site")?
            .call_method1("addsitedir", (site.display().to_string(),))?;
        let mut added = Vec::new();
        while path.len() > before {
            let last = path.len() - 1;
            added.push(path.get_item(last)?.extract::<String>()?);
            path.del_item(last)?;
        }
        added.reverse();
        Ok(added)
    })();
    added.map_err(fail)
}

fn sys_path(py: Python<'_>) -> String {
    py.import("sys")
        .and_then(|s| s.getattr("path"))
        .and_then(|p| p.repr())
        .map(|r| r.to_string())
        .unwrap_or_default()
}

/// The exception as Python prints it: `Traceback (most recent call last): ...`.
pub(crate) fn traceback(py: Python<'_>, e: &PyErr) -> String {
    let formatted = py.import("traceback").and_then(|tb| {
        tb.call_method1(
            "format_exception",
            (e.get_type(py), e.value(py), e.traceback(py)),
        )?
        .extract::<Vec<String>>()
    });
    match formatted {
        Ok(lines) => lines.concat(),
        Err(_) => e.to_string(),
    }
}

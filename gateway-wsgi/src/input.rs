//! `wsgi.input`: the request body, streamed from the front-end as the app reads it.

use std::sync::{Mutex, MutexGuard};

use bytes::{Buf, Bytes};
use gateway_core::Body;
use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use tokio::runtime::Handle;

/// The most a `read(n)` or `readline(n)` reserves before any data has arrived, so a huge `n`
/// costs nothing up front.
const RESERVE: usize = 64 * 1024;

/// The request body as a binary file: `read`, `readline`, `readlines` and iteration.
///
/// It holds one chunk of the body at a time; a read that needs more waits for the front-end
/// with the GIL released. Past the end it returns `b""`.
#[pyclass(module = "gatewayd", frozen)]
pub(crate) struct Input {
    state: Mutex<State>,
}

struct State {
    body: Body,
    buf: Bytes,
    eof: bool,
    handle: Handle,
    /// The status that answers a body that could not be read (413 over its cap, 400).
    failed: Option<u16>,
}

impl Input {
    pub(crate) fn new(body: Body, handle: Handle) -> Self {
        Input {
            state: Mutex::new(State {
                body,
                buf: Bytes::new(),
                eof: false,
                handle,
                failed: None,
            }),
        }
    }

    /// The status a failed body read asks for, if one failed.
    pub(crate) fn failed(&self) -> Option<u16> {
        self.state.lock().ok().and_then(|s| s.failed)
    }

    /// The state, or an error when another Python thread is reading: waiting on the lock
    /// with the GIL held could deadlock against a reader that waits for the GIL.
    fn state(&self) -> PyResult<MutexGuard<'_, State>> {
        self.state
            .try_lock()
            .map_err(|_| PyRuntimeError::new_err("wsgi.input is in use by another thread"))
    }
}

impl State {
    /// Makes `buf` non-empty unless the body has ended; false at the end.
    fn fill(&mut self, py: Python<'_>) -> PyResult<bool> {
        while self.buf.is_empty() {
            if self.eof {
                return Ok(false);
            }
            let (handle, body) = (&self.handle, &mut self.body);
            match py.detach(|| handle.block_on(body.chunk())) {
                Ok(Some(chunk)) => self.buf = chunk,
                Ok(None) => self.eof = true,
                Err(e) => {
                    self.eof = true;
                    self.failed = Some(e.status());
                    return Err(PyOSError::new_err(format!("wsgi.input: {e}")));
                }
            }
        }
        Ok(true)
    }

    /// Up to `limit` bytes, stopping after the first newline when `line`.
    fn take(&mut self, py: Python<'_>, limit: Option<usize>, line: bool) -> PyResult<Vec<u8>> {
        let limit = limit.unwrap_or(usize::MAX);
        let mut out = Vec::with_capacity(limit.min(RESERVE).min(self.buf.len().max(64)));
        while out.len() < limit && self.fill(py)? {
            let want = (limit - out.len()).min(self.buf.len());
            let (n, done) = match line {
                true => match self.buf[..want].iter().position(|&b| b == b'\n') {
                    Some(i) => (i + 1, true),
                    None => (want, false),
                },
                false => (want, false),
            };
            out.extend_from_slice(&self.buf[..n]);
            self.buf.advance(n);
            if done {
                break;
            }
        }
        Ok(out)
    }
}

/// A negative or absent size means "no limit", as for Python's files.
fn size_limit(size: Option<isize>) -> Option<usize> {
    size.and_then(|n| usize::try_from(n).ok())
}

#[pymethods]
impl Input {
    #[pyo3(signature = (size = None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let mut st = self.state()?;
        Ok(PyBytes::new(py, &st.take(py, size_limit(size), false)?))
    }

    #[pyo3(signature = (size = None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let mut st = self.state()?;
        Ok(PyBytes::new(py, &st.take(py, size_limit(size), true)?))
    }

    #[pyo3(signature = (hint = None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<isize>) -> PyResult<Bound<'py, PyList>> {
        let mut st = self.state()?;
        let hint = size_limit(hint).filter(|&h| h > 0);
        let lines = PyList::empty(py);
        let mut total = 0;
        loop {
            let line = st.take(py, None, true)?;
            if line.is_empty() {
                break;
            }
            total += line.len();
            lines.append(PyBytes::new(py, &line))?;
            if hint.is_some_and(|h| total >= h) {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.state()?.take(py, None, true)?;
        Ok((!line.is_empty()).then(|| PyBytes::new(py, &line)))
    }
}

//! `start_response` and the `write()` it returns: the head the app asks for, checked, and the
//! one place a response leaves for the front-end.

use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use gateway_core::{Body, Response};
use pyo3::exceptions::{PyAssertionError, PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use tokio::sync::{mpsc, oneshot};

use crate::body::{Chunk, Stream, bytes_of};

/// How many chunks may wait for the client before the app's thread waits too.
const STREAM_DEPTH: usize = 4;

/// Headers that describe the connection, which is the server's to manage (PEP 3333).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
];

/// The `start_response` callable of one request; its `write` method is the PEP's `write()`.
#[pyclass(module = "gatewayd", frozen)]
pub(crate) struct StartResponse {
    out: Mutex<Out>,
}

/// Where the response stands.
pub(crate) struct Out {
    /// The head from the last `start_response` (a response without its body), not sent yet.
    pending: Option<Response>,
    /// Until the head is sent: where the response goes.
    reply: Option<oneshot::Sender<Response>>,
    /// After a streamed head: where its body goes.
    stream: Option<mpsc::Sender<Chunk>>,
    /// The client (or the request's deadline) went away.
    pub(crate) gone: bool,
}

/// The client went away: stop producing the response.
pub(crate) struct Gone;

impl StartResponse {
    pub(crate) fn new(reply: oneshot::Sender<Response>) -> Self {
        StartResponse {
            out: Mutex::new(Out {
                pending: None,
                reply: Some(reply),
                stream: None,
                gone: false,
            }),
        }
    }

    /// The response state. Only one thread at a time may use it: an app that calls `write()`
    /// from two threads at once gets an error, not a deadlock on the GIL.
    pub(crate) fn out(&self) -> PyResult<MutexGuard<'_, Out>> {
        self.out
            .try_lock()
            .map_err(|_| PyRuntimeError::new_err("write() is in use by another thread"))
    }
}

impl Out {
    pub(crate) fn head_sent(&self) -> bool {
        self.reply.is_none()
    }

    pub(crate) fn pending(&self) -> Option<&Response> {
        self.pending.as_ref()
    }

    /// The pending head's Content-Length.
    pub(crate) fn content_length(&self) -> Option<u64> {
        let head = self.pending.as_ref()?;
        gateway_core::parse_decimal(head.header("content-length")?)
    }

    /// Sends the pending head with `body`: the whole response.
    pub(crate) fn finish(&mut self, body: Body) -> PyResult<Result<(), Gone>> {
        let head = self.take_head()?;
        let Some(reply) = self.reply.take() else {
            return Err(PyRuntimeError::new_err("the response was already sent"));
        };
        Ok(reply.send(head.with_body(body)).map_err(|_| self.went()))
    }

    /// Sends `data` after the head, sending the head first (with a streamed body) if it is
    /// still pending. Waits for the client with the GIL released.
    pub(crate) fn push(&mut self, py: Python<'_>, data: Bytes) -> PyResult<Result<(), Gone>> {
        if self.gone {
            return Ok(Err(Gone));
        }
        if !self.head_sent() {
            let length = self.content_length();
            // The first block is the whole body: send it with the head, no stream needed.
            if length == Some(data.len() as u64) {
                return self.finish(Body::from(data));
            }
            let (tx, rx) = mpsc::channel(STREAM_DEPTH);
            if let Err(gone) = self.finish(Body::new(Stream::new(rx, length)))? {
                return Ok(Err(gone));
            }
            self.stream = Some(tx);
        }
        if data.is_empty() {
            return Ok(Ok(()));
        }
        // No stream: the whole body went with the head, and this is past its Content-Length.
        let Some(tx) = &self.stream else {
            return Ok(Ok(()));
        };
        match py.detach(|| tx.blocking_send(Ok(data))) {
            Ok(()) => Ok(Ok(())),
            Err(_) => Ok(Err(self.went())),
        }
    }

    /// Ends the response: an empty body if the head is still pending.
    pub(crate) fn end(&mut self) -> PyResult<()> {
        if !self.head_sent() && !self.gone {
            let _ = self.finish(Body::empty())?;
        }
        self.stream = None;
        Ok(())
    }

    /// The app failed: `status` if nothing was sent yet, else the connection is cut.
    pub(crate) fn fail(&mut self, py: Python<'_>, status: u16) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(Response::error(status));
        } else if let Some(tx) = self.stream.take() {
            let _ = py
                .detach(|| tx.blocking_send(Err("the app raised after its head was sent".into())));
        }
    }

    fn take_head(&mut self) -> PyResult<Response> {
        self.pending.take().ok_or_else(|| {
            PyAssertionError::new_err("the app sent a body before calling start_response()")
        })
    }

    fn went(&mut self) -> Gone {
        self.gone = true;
        self.reply = None;
        self.stream = None;
        Gone
    }
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info = None))]
    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        status: &Bound<'py, PyAny>,
        headers: &Bound<'py, PyAny>,
        exc_info: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let exc_info = exc_info.filter(|e| !e.is_none());
        {
            let mut out = slf.get().out()?;
            match exc_info {
                // Too late to replace the head: the PEP says re-raise, and the app's
                // exception then cuts the connection.
                Some(info) if out.head_sent() => {
                    let value = info.get_item(1)?;
                    let value = value.call_method1("with_traceback", (info.get_item(2)?,))?;
                    return Err(PyErr::from_value(value));
                }
                None if out.pending.is_some() => {
                    return Err(PyAssertionError::new_err(
                        "start_response() called a second time without exc_info",
                    ));
                }
                _ => {}
            }
            out.pending = Some(parse_head(status, headers)?);
        }
        slf.getattr("write")
    }

    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = data.cast::<PyBytes>().map_err(|_| {
            PyTypeError::new_err(format!("write() takes bytes, not {}", type_name(data)))
        })?;
        match self.out()?.push(py, bytes_of(data))? {
            Ok(()) => Ok(()),
            Err(Gone) => Err(PyOSError::new_err("the client went away")),
        }
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// Checks `status` (`"NNN reason"`) and `headers` (a list of `(str, str)`), as
/// `wsgiref.validate` does, and encodes them (latin-1).
fn parse_head(status: &Bound<'_, PyAny>, headers: &Bound<'_, PyAny>) -> PyResult<Response> {
    let status = status.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!("status must be a str, not {}", type_name(status)))
    })?;
    let status = status.to_str()?;
    let code = match status.as_bytes() {
        [
            a @ b'1'..=b'9',
            b @ b'0'..=b'9',
            c @ b'0'..=b'9',
            b' ',
            reason @ ..,
        ] if reason
            .iter()
            .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b)) =>
        {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => {
            return Err(PyValueError::new_err(format!(
                "status {status:?} is not \"NNN reason\""
            )));
        }
    };
    let list = headers.cast::<PyList>().map_err(|_| {
        PyTypeError::new_err(format!(
            "headers must be a list of (name, value) tuples, not {}",
            type_name(headers)
        ))
    })?;
    let mut out = Vec::with_capacity(list.len());
    for item in list.iter() {
        let pair = item
            .cast::<PyTuple>()
            .ok()
            .filter(|t| t.len() == 2)
            .ok_or_else(|| {
                PyTypeError::new_err(format!(
                    "each header must be a (name, value) tuple, not {}",
                    item.repr().map(|r| r.to_string()).unwrap_or_default()
                ))
            })?;
        let (name, value) = (pair.get_item(0)?, pair.get_item(1)?);
        let (Ok(name), Ok(value)) = (name.cast::<PyString>(), value.cast::<PyString>()) else {
            return Err(PyTypeError::new_err(format!(
                "header names and values must be str: {}",
                pair.repr()?
            )));
        };
        let (name, value) = (name.to_str()?, value.to_str()?);
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(PyValueError::new_err(format!(
                "invalid header name {name:?}"
            )));
        }
        if HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name)) {
            return Err(PyValueError::new_err(format!(
                "hop-by-hop header {name:?} is the server's to set"
            )));
        }
        let value = latin1(value).filter(|v| http::HeaderValue::from_bytes(v).is_ok());
        let Some(value) = value else {
            return Err(PyValueError::new_err(format!(
                "header {name:?} has a value that is not printable latin-1"
            )));
        };
        out.push((Bytes::copy_from_slice(name.as_bytes()), Bytes::from(value)));
    }
    let mut head = Response::new(code);
    head.headers = out;
    Ok(head)
}

/// `s` as latin-1 bytes, if every character is in latin-1.
fn latin1(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect()
}

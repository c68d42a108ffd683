//! One request on a Python thread: call the app, send its result, close it.

use gateway_core::Body;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::body::{Chunks, bytes_of};
use crate::environ::{self, Names};
use crate::file_wrapper::FileWrapper;
use crate::input::Input;
use crate::load::traceback;
use crate::log::Errors;
use crate::pool::{Context, Job};
use crate::start_response::{Gone, StartResponse};

pub(crate) fn request(py: Python<'_>, ctx: &Context, names: &mut Names, job: Job) {
    let Job {
        environ,
        body,
        reply,
        id,
        handle,
    } = job;
    // The client left, or its deadline passed, while the request queued.
    if reply.is_closed() {
        return;
    }
    let _entered = id.map(gateway_core::request_id::enter);
    let start = match Bound::new(py, StartResponse::new(reply)) {
        Ok(s) => s,
        Err(e) => return log_failure(py, ctx, &e, "building start_response"),
    };
    let input = Bound::new(py, Input::new(body, handle));
    let called = input.and_then(|input| {
        let errors = Bound::new(py, Errors::new(ctx.name.clone(), id))?;
        let env = environ::build(
            py,
            ctx,
            names,
            &environ,
            input.clone().into_any(),
            errors.into_any(),
        )?;
        let result = ctx.callable.bind(py).call1((env, start.clone()))?;
        Ok((input, result))
    });
    let (input, result) = match called {
        Ok(called) => called,
        Err(e) => return fail(py, ctx, &start, None, &e),
    };
    let sent = send(py, &start, &result);
    // PEP 3333: close() once, whatever happened, and after the last item. A list or tuple has
    // none (and asking costs an AttributeError).
    let plain = result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>();
    let closed = match plain {
        true => Ok(()),
        false => match result.hasattr(intern!(py, "close")) {
            Ok(true) => result.call_method0(intern!(py, "close")).map(drop),
            Ok(false) => Ok(()),
            Err(e) => Err(e),
        },
    };
    if let Err(e) = sent.and(closed) {
        fail(py, ctx, &start, Some(&input), &e);
    }
}

/// Sends the app's result: a list or tuple whole, a file wrapper by the runtime, any other
/// iterable item by item.
fn send(
    py: Python<'_>,
    start: &Bound<'_, StartResponse>,
    result: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let start = start.get();
    if let Ok(list) = result.cast_exact::<PyList>() {
        return send_whole(py, start, list.iter());
    }
    if let Ok(tuple) = result.cast_exact::<PyTuple>() {
        return send_whole(py, start, tuple.iter());
    }
    if let Ok(wrapper) = result.cast_exact::<FileWrapper>() {
        let mut out = start.out()?;
        if !out.head_sent() && out.pending().is_some() {
            let limit = out.content_length();
            if let Some(body) = wrapper.get().native_body(py, limit) {
                let _ = out.finish(body)?;
                return Ok(());
            }
        }
    }
    for item in result.try_iter()? {
        let item = item?;
        let data = bytes_item(&item)?;
        // The head waits for the first non-empty item: until then the app may still call
        // start_response (late, or again with exc_info).
        if data.is_empty() {
            continue;
        }
        if let Err(Gone) = start.out()?.push(py, data)? {
            return Ok(());
        }
    }
    start.out()?.end()
}

/// A list or tuple of bytes: one response, with its length, when nothing was written yet.
fn send_whole<'py>(
    py: Python<'py>,
    start: &StartResponse,
    items: impl Iterator<Item = Bound<'py, PyAny>>,
) -> PyResult<()> {
    let chunks = items
        .map(|item| bytes_item(&item))
        .filter(|c| !matches!(c, Ok(c) if c.is_empty()))
        .collect::<PyResult<Vec<_>>>()?;
    let mut out = start.out()?;
    if !out.head_sent() {
        let body = match chunks.len() {
            0 => Body::empty(),
            1 => Body::from(chunks.into_iter().next().unwrap_or_default()),
            _ => Body::new(Chunks::new(chunks)),
        };
        let _ = out.finish(body)?;
        return Ok(());
    }
    for chunk in chunks {
        if let Err(Gone) = out.push(py, chunk)? {
            return Ok(());
        }
    }
    out.end()
}

fn bytes_item(item: &Bound<'_, PyAny>) -> PyResult<bytes::Bytes> {
    match item.cast::<PyBytes>() {
        Ok(b) => Ok(bytes_of(b)),
        Err(_) => Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "the app's iterable yielded {}, not bytes",
            item.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))),
    }
}

/// An exception from the app: logged with its traceback, answered 500 (or the status of a
/// body that could not be read) if the head is not sent, else the connection is cut.
fn fail(
    py: Python<'_>,
    ctx: &Context,
    start: &Bound<'_, StartResponse>,
    input: Option<&Bound<'_, Input>>,
    e: &PyErr,
) {
    let status = input.and_then(|i| i.get().failed()).unwrap_or(500);
    let Ok(mut out) = start.get().out() else {
        return log_failure(py, ctx, e, "the app");
    };
    if out.gone {
        tracing::debug!(target: "gatewayd::wsgi", app = %ctx.name, "the client went away: {e}");
        return;
    }
    let what = match out.head_sent() {
        true => "the app raised after its head was sent; the connection is cut",
        false => "the app raised",
    };
    if status == 500 {
        log_failure(py, ctx, e, what);
    }
    out.fail(py, status);
}

fn log_failure(py: Python<'_>, ctx: &Context, e: &PyErr, what: &str) {
    tracing::error!(
        target: "gatewayd::wsgi",
        app = %ctx.name,
        "{what}:\n{}",
        traceback(py, e).trim_end()
    );
}

//! `wsgi.errors`: what the app writes there goes to the log, line by line, under the app's
//! name and the request's id.

use std::sync::{Arc, Mutex};

use pyo3::prelude::*;

/// A line longer than this is logged in pieces, so a runaway write cannot grow a buffer.
const MAX_LINE: usize = 8 * 1024;

/// The `wsgi.errors` stream of one request.
#[pyclass(module = "gatewayd", frozen)]
pub(crate) struct Errors {
    app: Arc<str>,
    id: Option<u64>,
    line: Mutex<String>,
}

impl Errors {
    pub(crate) fn new(app: Arc<str>, id: Option<u64>) -> Self {
        Errors {
            app,
            id,
            line: Mutex::new(String::new()),
        }
    }

    fn emit(&self, line: &str) {
        // The app may keep the stream past its request, and write from any thread.
        let _entered = self.id.map(gateway_core::request_id::enter);
        tracing::warn!(target: "gatewayd::wsgi", app = %self.app, "{line}");
    }
}

#[pymethods]
impl Errors {
    fn write(&self, s: &str) -> usize {
        let Ok(mut line) = self.line.lock() else {
            return 0;
        };
        let mut rest = s;
        while let Some(i) = rest.find('\n') {
            line.push_str(&rest[..i]);
            self.emit(&line);
            line.clear();
            rest = &rest[i + 1..];
        }
        line.push_str(rest);
        if line.len() >= MAX_LINE {
            self.emit(&line);
            line.clear();
        }
        s.chars().count()
    }

    fn writelines(&self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(line?.extract::<&str>()?);
        }
        Ok(())
    }

    fn flush(&self) {
        if let Ok(mut line) = self.line.lock()
            && !line.is_empty()
        {
            self.emit(&line);
            line.clear();
        }
    }
}

impl Drop for Errors {
    fn drop(&mut self) {
        self.flush();
    }
}

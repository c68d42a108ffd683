//! `wsgi.file_wrapper`: a file-like object as the response body.

use std::fs::File;
use std::os::fd::BorrowedFd;

use gateway_core::Body;
use pyo3::prelude::*;
use std::io::{Seek, SeekFrom};

use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

/// Chunks read from a real file at a time, off Python.
const FILE_CHUNK: usize = 64 * 1024;

/// `environ["wsgi.file_wrapper"](filelike, blksize=8192)`.
///
/// As an iterable it reads `filelike.read(blksize)` until `b""`, so it works under any
/// middleware. Returned by the app as is, a real file is sent by the runtime's blocking pool
/// instead: the app's Python thread is free at once and no byte passes through Python.
#[pyclass(module = "gatewayd", name = "FileWrapper", frozen)]
pub(crate) struct FileWrapper {
    filelike: Py<PyAny>,
    blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize = 8192))]
    fn new(filelike: Py<PyAny>, blksize: usize) -> Self {
        FileWrapper {
            filelike,
            blksize: blksize.max(1),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let data = self
            .filelike
            .bind(py)
            .call_method1("read", (self.blksize,))?;
        Ok((data.len()? > 0).then_some(data))
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let f = self.filelike.bind(py);
        if f.hasattr("close")? {
            f.call_method0("close")?;
        }
        Ok(())
    }
}

impl FileWrapper {
    /// The file as a body, from its current position and at most `limit` bytes (the
    /// response's Content-Length), when it is a regular file with a descriptor; `None` for
    /// any other file-like object.
    pub(crate) fn native_body(&self, py: Python<'_>, limit: Option<u64>) -> Option<Body> {
        let f = self.filelike.bind(py);
        let fd: i32 = f.call_method0("fileno").ok()?.extract().ok()?;
        let pos: u64 = f.call_method0("tell").ok()?.extract().ok()?;
        // SAFETY: `filelike` is alive and holds `fd` open while we hold the GIL; the borrow
        // lasts only for the duplication, after which the copy is ours.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) }
            .try_clone_to_owned()
            .ok()?;
        let mut file = File::from(fd);
        if !file.metadata().ok()?.is_file() {
            return None;
        }
        // The copy shares its offset with the app's descriptor: the app has handed the file
        // over and `close()` follows at once, so nobody else moves it.
        file.seek(SeekFrom::Start(pos)).ok()?;
        let file = tokio::fs::File::from_std(file).take(limit.unwrap_or(u64::MAX));
        Some(Body::from_stream(ReaderStream::with_capacity(
            file, FILE_CHUNK,
        )))
    }
}

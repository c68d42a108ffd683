//! The app and its pool of Python threads.

use std::pin::pin;
use std::sync::Arc;

use gateway_core::{App, Body, Environ, Response};
use pyo3::prelude::*;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::environ::Names;
use crate::queue::{Queue, Refused, STALL};
use crate::{LoadError, WsgiConfig, load, run};

/// A Python WSGI callable as an [`App`].
///
/// Requests queue for its threads; a full queue (the app's `max_concurrency`) answers 503.
/// Dropping the app ends its threads once they finish the requests they hold.
pub struct WsgiApp {
    queue: Arc<Queue<Job>>,
}

impl Drop for WsgiApp {
    fn drop(&mut self) {
        self.queue.close();
    }
}

/// What every request of the app shares.
pub(crate) struct Context {
    pub(crate) name: Arc<str>,
    pub(crate) callable: Py<PyAny>,
    pub(crate) multithread: bool,
    pub(crate) multiprocess: bool,
}

/// One request, handed to a Python thread.
pub(crate) struct Job {
    pub(crate) environ: Environ,
    pub(crate) body: Body,
    pub(crate) reply: oneshot::Sender<Response>,
    /// The request's id, current on the Python thread so its logs carry it.
    pub(crate) id: Option<u64>,
    pub(crate) handle: Handle,
}

impl WsgiApp {
    /// Imports the app (starting the interpreter on first use) and starts its threads.
    ///
    /// Fails with the reason and the Python traceback when the module is not found, raises
    /// on import, or lacks the callable.
    pub fn load(name: &str, cfg: &WsgiConfig) -> Result<WsgiApp, LoadError> {
        if !(1..=1024).contains(&cfg.threads) {
            return Err(LoadError::new(format!(
                "threads must be 1..=1024, not {}",
                cfg.threads
            )));
        }
        Python::initialize();
        let callable = Python::attach(|py| load::import(py, cfg))?;
        let ctx = Arc::new(Context {
            name: name.into(),
            callable,
            multithread: cfg.threads > 1,
            multiprocess: cfg.multiprocess,
        });
        let queue = Arc::new(Queue::new(cfg.queue));
        for i in 0..cfg.threads {
            let (ctx, queue) = (ctx.clone(), queue.clone());
            std::thread::Builder::new()
                .name(format!("wsgi-{i}"))
                .spawn(move || serve(&ctx, &queue))
                .map_err(|e| LoadError::new(format!("starting a Python thread: {e}")))?;
        }
        Ok(WsgiApp { queue })
    }
}

/// A Python thread: attached to the interpreter for its whole life, it releases the GIL
/// while it waits for a job. Under load it takes the next queued job before letting go of
/// the GIL: one handover of the GIL and no sleep per request instead of one of each.
fn serve(ctx: &Context, queue: &Queue<Job>) {
    let mut names = Names::default();
    Python::attach(|py| {
        while let Some(mut job) = py.detach(|| queue.take()) {
            loop {
                run::request(py, ctx, &mut names, job);
                match queue.next() {
                    Some(next) => job = next,
                    None => break,
                }
            }
        }
    });
}

impl App for WsgiApp {
    async fn call(&self, environ: Environ, body: Body) -> Response {
        let Ok(handle) = Handle::try_current() else {
            return Response::error(500);
        };
        let (reply, response) = oneshot::channel();
        let job = Job {
            environ,
            body,
            reply,
            id: gateway_core::request_id::current(),
            handle,
        };
        let queued = match self.queue.push(job) {
            Ok(queued) => queued,
            Err((Refused::Full, _)) => {
                return Response::error(503).with_header("Retry-After", "1");
            }
            Err((Refused::Closed, _)) => return Response::error(503),
        };
        // No answer at all means the thread dropped the request: its failure is logged there.
        let mut response = pin!(response);
        if !queued.left_to_busy {
            return response.await.unwrap_or_else(|_| Response::error(500));
        }
        // Left to the threads at work: while they are waiting rather than computing, wake
        // another for the requests that wait.
        loop {
            tokio::select! {
                biased;
                res = &mut response => return res.unwrap_or_else(|_| Response::error(500)),
                () = tokio::time::sleep(STALL) => self.queue.nudge(),
            }
        }
    }
}

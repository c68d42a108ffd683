//! One request's task: call the app and write its response as STDOUT records.

use std::sync::Arc;

use bytes::BytesMut;
use futures_util::FutureExt as _;
use gateway_core::{App, Body, Environ, Response, ResponseWriter};
use tokio::sync::mpsc;

use crate::codec::{put_stream, put_stream_end};
use crate::connection::Transmit;
use crate::record::RecordType;
use crate::stdin::StdinWatch;

/// How a request's response ended, for the connection, which writes END_REQUEST.
#[derive(Debug)]
pub(crate) struct Done {
    /// The request id.
    pub id: u16,
    /// The end of STDOUT, not sent yet, so that END_REQUEST goes out in the same write; `None`
    /// when the response body failed mid-way: the connection must close so that the web server
    /// sees a truncated response, not a complete one.
    pub tail: Option<BytesMut>,
}

/// Calls the app and streams its response to the writer, but for the end of STDOUT, which it
/// returns. Dropping this future (FCGI_ABORT_REQUEST, a lost connection) drops the app's;
/// whole buffers go to the writer, so no record is ever cut in half. When STDIN disagreed
/// with CONTENT_LENGTH before the head goes out, the answer is 400 whatever the app said:
/// an app that swallowed its body's error must not answer a malformed request as if whole.
pub(crate) async fn run<A: App>(
    id: u16,
    env: Environ,
    body: Body,
    stdin: StdinWatch,
    app: Arc<A>,
    out: mpsc::Sender<Transmit>,
) -> Done {
    let head_only = env.method() == "HEAD";
    let mut res = app.call(env, body).await;
    if let Some(failure) = stdin.mismatch() {
        tracing::info!(id, %failure, app_status = res.status, "answering 400 instead of the app");
        res = Response::error(400);
    }
    Done {
        id,
        tail: write(id, res, head_only, &out).await.ok(),
    }
}

/// A response already decided by the front-end (400, 413, 431...), without the app.
pub(crate) fn put_error(dst: &mut BytesMut, id: u16, status: u16) {
    let (mut w, body) = ResponseWriter::new(Response::error(status), false);
    // An error page is whole: its body is there at once.
    if let Some(Ok(page)) = body.to_bytes().now_or_never() {
        w.push(page);
    }
    w.end();
    while let Some(bytes) = w.poll_transmit() {
        put_stream(dst, RecordType::Stdout, id, &bytes);
    }
    put_stream_end(dst, RecordType::Stdout, id);
}

/// Streams the response as STDOUT records: what the writer hands out between two waits on the
/// body goes to the connection as one buffer, so a small response goes out whole with
/// END_REQUEST.
async fn write(
    id: u16,
    res: Response,
    head_only: bool,
    out: &mpsc::Sender<Transmit>,
) -> Result<BytesMut, ()> {
    let (mut w, mut body) = ResponseWriter::new(res, head_only);
    // Room for a usual head and small body, framed, and END_REQUEST: one allocation.
    let mut buf = BytesMut::with_capacity(512);
    loop {
        while let Some(bytes) = w.poll_transmit() {
            put_stream(&mut buf, RecordType::Stdout, id, &bytes);
        }
        if w.is_done() {
            put_stream_end(&mut buf, RecordType::Stdout, id);
            return Ok(buf);
        }
        if !buf.is_empty() {
            out.send(Transmit::Data(buf.split().freeze()))
                .await
                .map_err(|_| ())?;
        }
        match body.chunk().await {
            Ok(Some(chunk)) => w.push(chunk),
            Ok(None) => w.end(),
            Err(e) => {
                tracing::error!(error = %e, "the response body failed; cutting the connection");
                return Err(());
            }
        }
    }
}

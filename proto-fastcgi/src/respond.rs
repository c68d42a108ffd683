//! One request's task: call the app and write its response as STDOUT records.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use gateway_core::{App, Body, Environ, Response, write_head_or_500, write_response_head};
use tokio::sync::mpsc;

use crate::codec::{put_stream, put_stream_end};
use crate::record::RecordType;
use crate::stdin::StdinWatch;

/// How a request's response ended, for the connection, which writes END_REQUEST.
#[derive(Debug)]
pub struct Done {
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
pub async fn run(
    id: u16,
    env: Environ,
    body: Body,
    stdin: StdinWatch,
    app: Arc<dyn App>,
    out: mpsc::Sender<Bytes>,
) -> Done {
    let head_only = env.method() == "HEAD";
    let mut res = app.answer(env, body).await;
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
pub fn put_error(dst: &mut BytesMut, id: u16, status: u16) {
    let res = Response::error(status);
    let mut head = BytesMut::new();
    // A status from this crate is always valid.
    let _ = write_response_head(&res, &mut head);
    head.extend_from_slice(format!("{status}\n").as_bytes());
    put_stream(dst, RecordType::Stdout, id, &head);
    put_stream_end(dst, RecordType::Stdout, id);
}

async fn write(
    id: u16,
    res: Response,
    head_only: bool,
    out: &mpsc::Sender<Bytes>,
) -> Result<BytesMut, ()> {
    let mut head = BytesMut::with_capacity(256);
    let mut body = write_head_or_500(res, &mut head);
    let mut buf = BytesMut::with_capacity(head.len() + 64);
    put_stream(&mut buf, RecordType::Stdout, id, &head);
    if head_only {
        body = Body::empty();
    }
    if let Some(len) = body.exact_len() {
        // The whole body is here: one buffer, written with END_REQUEST in one write.
        let data = body.to_bytes().await.map_err(|_| ())?;
        debug_assert_eq!(data.len() as u64, len);
        put_stream(&mut buf, RecordType::Stdout, id, &data);
    } else {
        // Streamed: each chunk goes out as the app yields it.
        out.send(buf.split().freeze()).await.map_err(|_| ())?;
        loop {
            match body.chunk().await {
                Ok(Some(chunk)) => {
                    put_stream(&mut buf, RecordType::Stdout, id, &chunk);
                    out.send(buf.split().freeze()).await.map_err(|_| ())?;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "the response body failed; cutting the connection");
                    return Err(());
                }
            }
        }
    }
    put_stream_end(&mut buf, RecordType::Stdout, id);
    Ok(buf)
}

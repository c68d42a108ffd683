//! When the client goes away mid-request, the app's future is dropped (the documented
//! cancellation of `App::call`), and the connection task ends.

use std::sync::Arc;
use std::time::Duration;

use gateway_core::{App, Body, Environ, Response};
use proto_http::{ConnInfo, HttpConfig, serve_connection};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// Sends on its channel when dropped.
struct Guard(Option<oneshot::Sender<()>>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// Waits forever, holding a guard.
struct Stuck {
    started: std::sync::Mutex<Option<oneshot::Sender<()>>>,
    dropped: std::sync::Mutex<Option<oneshot::Sender<()>>>,
}

impl App for Stuck {
    async fn call(&self, _env: Environ, _body: Body) -> Response {
        let _guard = Guard(self.dropped.lock().unwrap().take());
        if let Some(tx) = self.started.lock().unwrap().take() {
            let _ = tx.send(());
        }
        std::future::pending::<()>().await;
        Response::new(200)
    }
}

#[tokio::test]
async fn client_abort_drops_the_app_future() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (started_tx, started) = oneshot::channel();
    let (dropped_tx, dropped) = oneshot::channel();
    let app = Arc::new(Stuck {
        started: Some(started_tx).into(),
        dropped: Some(dropped_tx).into(),
    });
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let conn = ConnInfo::default();
        let config = Arc::new(HttpConfig::default());
        serve_connection(stream, conn, app, config, CancellationToken::new()).await;
    });

    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), started)
        .await
        .unwrap()
        .unwrap();
    drop(client);

    tokio::time::timeout(Duration::from_secs(5), dropped)
        .await
        .expect("the app future was not dropped after the client left")
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the connection task did not end")
        .unwrap();
}

//! The daemon's shutdown, watched by a front-end's connection task, which is polled many times
//! per request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Ready once the token is cancelled. Polling tokio-util's future takes two locks every time
/// (the token's and its notifier's), and a connection's select polls it on every wake-up of
/// the task. This one polls it only after the token's own wake-up, which a flag records;
/// otherwise a poll by the task it last registered costs a load and a comparison.
///
/// ```
/// use gateway_core::Shutdown;
/// use tokio_util::sync::CancellationToken;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let token = CancellationToken::new();
/// let mut shutdown = Shutdown::new(token.clone());
/// token.cancel();
/// (&mut shutdown).await;
/// # });
/// ```
pub struct Shutdown {
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    flag: Arc<Flag>,
    /// Wakes through `flag`: what the token's future is polled with.
    waker: Waker,
    /// The task's waker as last registered in `flag`: until the flag is woken, a poll with the
    /// same one need not register it again.
    registered: Option<Waker>,
}

struct Flag {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Shutdown {
    /// Watches `token`.
    pub fn new(token: CancellationToken) -> Self {
        // Set at first, so that the first poll registers with the token.
        let flag = Arc::new(Flag {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        Shutdown {
            cancelled: Box::pin(token.cancelled_owned()),
            waker: Waker::from(flag.clone()),
            flag,
            registered: None,
        }
    }
}

impl Future for Shutdown {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let same_task = this
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()));
        if same_task && !this.flag.woken.load(Ordering::Acquire) {
            return Poll::Pending;
        }
        this.flag.task.register(cx.waker());
        if !same_task {
            this.registered = Some(cx.waker().clone());
        }
        if !this.flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        this.cancelled
            .as_mut()
            .poll(&mut Context::from_waker(&this.waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ready_once_cancelled_and_not_before() {
        let token = CancellationToken::new();
        let mut shutdown = Shutdown::new(token.clone());
        for _ in 0..3 {
            assert!(futures_util::poll!(&mut shutdown).is_pending());
        }
        let waiter = tokio::spawn(shutdown);
        tokio::task::yield_now().await;
        token.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the cancel wakes the task")
            .expect("the task ends");
    }

    #[tokio::test]
    async fn a_task_that_polled_before_is_woken() {
        // Polls by the same task after the first skip registering; the cancel still wakes it.
        let token = CancellationToken::new();
        let mut shutdown = Shutdown::new(token.clone());
        for _ in 0..3 {
            assert!(futures_util::poll!(&mut shutdown).is_pending());
        }
        let canceller = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            canceller.cancel();
        });
        tokio::time::timeout(std::time::Duration::from_secs(5), &mut shutdown)
            .await
            .expect("the cancel wakes this task");
    }
}

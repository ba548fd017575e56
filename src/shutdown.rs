//! The stop signal: how background tasks learn that the server is stopping, and the
//! process signals (SIGTERM, Ctrl-C) that start it. Used from the storage layer up.

use tokio::sync::watch;

/// Completes once the stop signal of the background tasks is set — at once when it
/// already is — or when its sender is gone. Level-triggered on purpose: `changed()`
/// completes once per change, so a task that took the signal in one place (an inner
/// wait) and waited for it again in another (its main loop) would wait forever, and the
/// server with it at shutdown.
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// Completes on SIGTERM or SIGINT (Ctrl-C). The handlers are installed when this is
/// called, not when the future is first polled: a signal that arrives in between (a
/// stop right after the listener is announced) is kept for it instead of killing the
/// process with the default action. Call it inside the runtime, early.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        let wait = |s: std::io::Result<tokio::signal::unix::Signal>, name: &'static str| async move {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for {name}");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            () = wait(term, "SIGTERM") => {},
            () = wait(int, "SIGINT") => {},
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_stop_signal_once_taken_still_ends_every_later_wait() {
        let (tx, mut rx) = watch::channel(false);
        {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            let early = std::pin::pin!(stopped(&mut rx));
            assert!(early.poll(&mut cx).is_pending(), "no stop yet");
        }
        // Sent twice, as the server does (at shutdown, and again once serving ended).
        tx.send(true).unwrap();
        tx.send(true).unwrap();
        for wait in ["an inner wait", "the main loop's wait after it"] {
            tokio::time::timeout(Duration::from_secs(5), stopped(&mut rx))
                .await
                .unwrap_or_else(|_| panic!("{wait} did not see the stop signal"));
        }
        drop(tx);
        let (tx, mut rx) = watch::channel(false);
        drop(tx);
        tokio::time::timeout(Duration::from_secs(5), stopped(&mut rx))
            .await
            .expect("a gone sender ends the wait");
    }
}

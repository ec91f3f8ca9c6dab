//! A request body's first look, made without leaving a waker behind.
//!
//! actix-http's HTTP/1 dispatcher calls a handler as soon as it has parsed a
//! request's head, before it feeds the body that came in the same read; then
//! it feeds the body, and then, in the same pass, polls the handler again. A
//! handler that looked for the body on the first call left its task's waker
//! with the payload, the feeding fired it, and the task ran the whole
//! dispatcher once more for nothing: a license's second of three passes
//! (issue 37).
//!
//! [`first_look`] polls the body future the first time with a waker that does
//! nothing, and every later time with the task's own. It is always wrapped in
//! the body's timeout, whose timer holds the task's waker from that first poll
//! on: were a future actix-http not to poll the handler again after feeding
//! the body, the request would go on when the timer fires, slow but never
//! stuck (`tests/api/connections.rs` times bodies that arrive in pieces).
//!
//! This holds for HTTP/1, where the connection's own task feeds the body and
//! polls the handler. Under HTTP/2 a handler runs in a task of its own that
//! only the body's arrival wakes: the license listener speaks HTTP/1.1 only
//! (actix-web's `http2` feature is off), which `tests/api/tls.rs` checks.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::{Context, Waker};

/// `body`, polled the first time with a waker that does nothing (see the
/// module doc). Only for a body future that the body's timeout wraps.
pub(super) async fn first_look<F: Future>(body: F) -> F::Output {
    let mut body = pin!(body);
    let mut looked = false;
    poll_fn(move |cx| {
        if std::mem::replace(&mut looked, true) {
            body.as_mut().poll(cx)
        } else {
            body.as_mut().poll(&mut Context::from_waker(Waker::noop()))
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    use super::first_look;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A body that arrives after one look wakes nobody, and the next look
    /// reads it; after two looks, the second look's waker is woken once.
    #[test]
    fn only_the_looks_after_the_first_leave_a_waker() {
        for (looks_before_the_body, wakes) in [(1, 0), (2, 1)] {
            let count = Arc::new(Count(AtomicUsize::new(0)));
            let waker = Waker::from(count.clone());
            let mut cx = Context::from_waker(&waker);
            let (tx, rx) = tokio::sync::oneshot::channel::<u8>();
            let mut look = pin!(first_look(rx));
            for _ in 0..looks_before_the_body {
                assert!(look.as_mut().poll(&mut cx).is_pending());
            }
            tx.send(7).unwrap();
            assert_eq!(
                count.0.load(Ordering::SeqCst),
                wakes,
                "{looks_before_the_body} looks"
            );
            assert!(matches!(look.as_mut().poll(&mut cx), Poll::Ready(Ok(7))));
        }
    }

    #[test]
    fn a_body_already_there_is_read_at_the_first_look() {
        let (tx, rx) = tokio::sync::oneshot::channel::<u8>();
        tx.send(7).unwrap();
        let mut look = pin!(first_look(rx));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(look.as_mut().poll(&mut cx), Poll::Ready(Ok(7))));
    }
}

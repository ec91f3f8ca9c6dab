//! Response bodies produced by a blocking thread (CSV export of the license
//! log, report downloads): the thread sends chunks, the client reads them at
//! its own pace, and a client that goes away stops the thread.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::HttpRequest;
use actix_web::body::{BodySize, MessageBody};
use actix_web::http::Method;
use actix_web::web::Bytes;
use tokio::sync::mpsc;

/// Chunks in flight between the thread and the client.
const CHUNKS_IN_FLIGHT: usize = 8;
/// The size of one chunk.
pub const CHUNK: usize = 64 * 1024;

pub struct ChannelBody {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    size: BodySize,
}

impl MessageBody for ChannelBody {
    type Error = std::io::Error;

    fn size(&self) -> BodySize {
        self.size
    }

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        self.rx.poll_recv(cx)
    }
}

/// The sending half, for the producing thread.
pub struct Chunks(mpsc::Sender<std::io::Result<Bytes>>);

impl Chunks {
    /// Sends one chunk; `false` once the client has gone.
    pub fn send(&self, chunk: Vec<u8>) -> bool {
        self.0.blocking_send(Ok(Bytes::from(chunk))).is_ok()
    }

    /// Ends the body with an error: the client sees a cut-off download, not a
    /// file that looks complete.
    pub fn fail(&self, why: String) {
        let _ = self.0.blocking_send(Err(std::io::Error::other(why)));
    }
}

/// A body of `size` bytes (or unknown) filled by `produce` on its own thread.
///
/// The answer to a `HEAD` is the same body without the thread: its head says
/// what a `GET` would send, and actix-http would otherwise read the whole body
/// (a CSV of millions of rows) only to drop it.
pub fn spawn(
    req: &HttpRequest,
    name: &str,
    size: Option<u64>,
    produce: impl FnOnce(Chunks) + Send + 'static,
) -> std::io::Result<ChannelBody> {
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    if req.method() != Method::HEAD {
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || produce(Chunks(tx)))?;
    }
    Ok(ChannelBody {
        rx,
        size: size.map_or(BodySize::Stream, BodySize::Sized),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use actix_web::test::TestRequest;

    /// The bytes of a body and whether its producer ran, for a request with `method`.
    async fn produced(method: Method) -> (Option<u64>, Vec<u8>, bool) {
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let req = TestRequest::default().method(method).to_http_request();
        let body = spawn(&req, "berth-body-test", Some(5), {
            let ran = ran.clone();
            move |chunks| {
                ran.store(true, std::sync::atomic::Ordering::SeqCst);
                chunks.send(b"12345".to_vec());
            }
        })
        .unwrap();
        let size = match body.size() {
            BodySize::Sized(n) => Some(n),
            _ => None,
        };
        let bytes = actix_web::body::to_bytes(body).await.unwrap();
        (
            size,
            bytes.to_vec(),
            ran.load(std::sync::atomic::Ordering::SeqCst),
        )
    }

    #[actix_web::test]
    async fn a_head_gets_the_size_and_starts_no_thread() {
        assert_eq!(produced(Method::GET).await, (Some(5), b"12345".to_vec(), true));
        assert_eq!(produced(Method::HEAD).await, (Some(5), Vec::new(), false));
    }
}

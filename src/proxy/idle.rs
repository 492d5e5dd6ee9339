//! `idle_timeout` for streamed bodies: a body that fails when no frame arrives for a
//! while, so a stalled upstream (or client) cannot hold a connection forever.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The error an idle body ends with.
#[derive(Debug, thiserror::Error)]
#[error("no data for {0:?} (idle_timeout)")]
pub struct IdleTimeout(pub Duration);

/// Wraps a body; every frame restarts the timer. The timer is made the first time
/// the body has to wait, and moved only when it waits again after a frame, so a body
/// that is ready at once (most small responses) never touches the timer wheel.
pub struct IdleBody<B> {
    inner: B,
    limit: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    /// A frame came since the timer was last set.
    moved: bool,
}

impl<B> IdleBody<B> {
    pub fn new(inner: B, limit: Duration) -> IdleBody<B> {
        IdleBody {
            inner,
            limit,
            timer: None,
            moved: false,
        }
    }
}

impl<B> Body for IdleBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.moved = true;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let limit = this.limit;
                let timer = match &mut this.timer {
                    Some(t) if this.moved => {
                        t.as_mut().reset(Instant::now() + limit);
                        t
                    }
                    Some(t) => t,
                    None => this.timer.insert(Box::pin(tokio::time::sleep(limit))),
                };
                this.moved = false;
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(IdleTimeout(limit))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    #[tokio::test]
    async fn a_stalled_body_fails_and_a_flowing_one_does_not() {
        // Two frames 50 ms apart, then a stall.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
        let stream = tokio_stream_from(rx);
        let mut body = IdleBody::new(StreamBody::new(stream), Duration::from_millis(200));
        tx.send(Ok(Frame::data(Bytes::from_static(b"a"))))
            .await
            .unwrap();
        assert!(body.frame().await.unwrap().is_ok());
        tokio::time::sleep(Duration::from_millis(50)).await;
        tx.send(Ok(Frame::data(Bytes::from_static(b"b"))))
            .await
            .unwrap();
        assert!(body.frame().await.unwrap().is_ok());
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("idle_timeout"), "{err}");
        drop(tx);
    }

    #[tokio::test]
    async fn a_slow_reader_is_not_an_idle_body() {
        // The limit is on waiting for the source, not on the reader's pace: after a
        // reader that paused for longer than the limit, the next frame still has the
        // whole limit to arrive.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
        let mut body = IdleBody::new(
            StreamBody::new(tokio_stream_from(rx)),
            Duration::from_millis(100),
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(20), body.frame())
                .await
                .is_err()
        );
        tx.send(Ok(Frame::data(Bytes::from_static(b"a"))))
            .await
            .unwrap();
        assert!(body.frame().await.unwrap().is_ok());
        tokio::time::sleep(Duration::from_millis(250)).await;
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            tx.send(Ok(Frame::data(Bytes::from_static(b"b"))))
                .await
                .unwrap();
        });
        assert!(body.frame().await.unwrap().is_ok());
        late.await.unwrap();
        assert!(body.frame().await.is_none());
    }

    fn tokio_stream_from<T: Send + 'static>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> + Unpin {
        Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }
}

//! `idle_timeout` for streamed bodies (a body that fails when no frame arrives for a
//! while) and for upgraded connections ([`tunnel`]: closed when neither side sent
//! anything for that long), so a stalled peer cannot hold a connection forever while
//! an active one lives as long as it is used.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

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

/// How an upgraded connection ended.
#[derive(Debug)]
pub enum TunnelEnd {
    /// One side closed: the bytes sent client → upstream and upstream → client.
    Closed(u64, u64),
    /// Neither side sent anything for the idle limit.
    Idle,
}

/// Copies between the two sides of an upgraded connection until one closes, or until
/// neither has sent anything for `idle` (zero: no limit). Activity is what either side
/// sends: a WebSocket in use lives as long as it is used.
pub async fn tunnel<A, B>(a: A, b: B, idle: Duration) -> std::io::Result<TunnelEnd>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut a = Active::new(a, start, last.clone());
    let mut b = Active::new(b, start, last.clone());
    let copy = tokio::io::copy_bidirectional(&mut a, &mut b);
    tokio::pin!(copy);
    if idle.is_zero() {
        return copy.await.map(|(up, down)| TunnelEnd::Closed(up, down));
    }
    loop {
        let deadline = start + Duration::from_millis(last.load(Ordering::Relaxed)) + idle;
        tokio::select! {
            done = &mut copy => return done.map(|(up, down)| TunnelEnd::Closed(up, down)),
            () = tokio::time::sleep_until(deadline) => {
                let quiet_since = start + Duration::from_millis(last.load(Ordering::Relaxed));
                if Instant::now() >= quiet_since + idle {
                    return Ok(TunnelEnd::Idle);
                }
            }
        }
    }
}

/// One side of a tunnel, noting (ms since `start`) when it last delivered bytes.
struct Active<T> {
    io: T,
    start: Instant,
    last: Arc<AtomicU64>,
}

impl<T> Active<T> {
    fn new(io: T, start: Instant, last: Arc<AtomicU64>) -> Active<T> {
        Active { io, start, last }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Active<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let now = self.start.elapsed().as_millis() as u64;
            self.last.fetch_max(now, Ordering::Relaxed);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Active<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A tunnel used more often than its idle limit stays open past it, in either
    /// direction; once both sides are quiet for the limit it closes.
    #[tokio::test(start_paused = true)]
    async fn a_tunnel_in_use_stays_open_and_an_idle_one_closes() {
        let (client, client_far) = tokio::io::duplex(1024);
        let (upstream, upstream_far) = tokio::io::duplex(1024);
        let limit = Duration::from_secs(1);
        let used_one = tokio::spawn(tunnel(client_far, upstream_far, limit));
        let (mut client, mut upstream) = (client, upstream);
        let opened = Instant::now();
        let mut byte = [0u8; 1];
        for i in 0..10u8 {
            tokio::time::sleep(Duration::from_millis(400)).await;
            // Alternate directions: either side's bytes count.
            if i % 2 == 0 {
                client.write_all(&[i]).await.unwrap();
                upstream.read_exact(&mut byte).await.unwrap();
            } else {
                upstream.write_all(&[i]).await.unwrap();
                client.read_exact(&mut byte).await.unwrap();
            }
            assert_eq!(byte[0], i);
        }
        assert!(!used_one.is_finished(), "closed while in use");
        let used = opened.elapsed();
        assert!(used >= Duration::from_secs(4), "{used:?}");
        let end = used_one.await.unwrap().unwrap();
        assert!(matches!(end, TunnelEnd::Idle), "{end:?}");
        let quiet = opened.elapsed() - used;
        assert!(
            quiet >= limit && quiet < limit + Duration::from_millis(50),
            "{quiet:?}"
        );
        // No limit: only a close ends it.
        let (mut client, client_far) = tokio::io::duplex(64);
        let (upstream, upstream_far) = tokio::io::duplex(64);
        let open = tokio::spawn(tunnel(client_far, upstream_far, Duration::ZERO));
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(!open.is_finished());
        client.shutdown().await.unwrap();
        drop(upstream);
        assert!(matches!(
            open.await.unwrap(),
            Ok(TunnelEnd::Closed(0, 0)) | Err(_)
        ));
    }

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

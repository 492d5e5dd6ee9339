//! The client socket after accept: bytes read past a PROXY header first, then the
//! socket; shutting it down sends FIN and lingers (bounded) reading what the client
//! still sends.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::super::client_addr::{self, Parsed, ProxyError, ProxyHeader};

/// How long a closing connection keeps reading (and discarding) what the client still
/// sends, and how much of it: closing a socket with unread data makes the kernel send
/// a reset, which can destroy a response the client has not read yet (a 431 sent while
/// the client is still writing its oversized header).
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;

/// The client socket: first any bytes read past the PROXY header, then the socket.
/// Shutting it down sends FIN, then lingers (bounded) reading what the client still
/// sends so that our last response is not destroyed by a reset.
pub struct ClientIo {
    tcp: TcpStream,
    prefix: Bytes,
    linger: Linger,
}

enum Linger {
    Open,
    Draining {
        left: usize,
        deadline: Option<Pin<Box<Sleep>>>,
    },
    Done,
}

impl ClientIo {
    pub fn new(tcp: TcpStream) -> ClientIo {
        ClientIo {
            tcp,
            prefix: Bytes::new(),
            linger: Linger::Open,
        }
    }

    /// Reads the PROXY header a load balancer sends first (v1 or v2), within whatever
    /// deadline the caller sets. The connection's own bytes read past it are kept.
    pub async fn read_proxy_header(
        mut tcp: TcpStream,
    ) -> Result<(ClientIo, ProxyHeader), ProxyReadError> {
        let mut buf = [0u8; 256];
        let mut filled = 0;
        let header = loop {
            let n = tcp.read(&mut buf[filled..]).await?;
            if n == 0 {
                return Err(ProxyReadError::Proxy(ProxyError::Missing));
            }
            filled += n;
            match client_addr::parse_proxy_header(&buf[..filled])? {
                Parsed::Header(h) => break h,
                // Both versions are decided within 232 bytes, so the buffer never
                // fills up while incomplete.
                Parsed::Incomplete if filled == buf.len() => {
                    return Err(ProxyReadError::Proxy(ProxyError::Missing));
                }
                Parsed::Incomplete => {}
            }
        };
        let prefix = if header.len <= filled {
            Bytes::copy_from_slice(&buf[header.len..filled])
        } else {
            // v2 TLVs we do not use: skip them (at most 64 KiB, by the length field).
            let mut skip = header.len - filled;
            while skip > 0 {
                let n = tcp.read(&mut buf[..skip.min(256)]).await?;
                if n == 0 {
                    return Err(ProxyReadError::Proxy(ProxyError::Missing));
                }
                skip -= n;
            }
            Bytes::new()
        };
        Ok((
            ClientIo {
                tcp,
                prefix,
                linger: Linger::Open,
            },
            header,
        ))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyReadError {
    #[error("{0}")]
    Proxy(#[from] ProxyError),
    #[error("reading the PROXY header: {0}")]
    Io(#[from] io::Error),
}

impl AsyncRead for ClientIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if !me.prefix.is_empty() {
            let n = me.prefix.len().min(buf.remaining());
            buf.put_slice(&me.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut me.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        loop {
            match &mut me.linger {
                Linger::Open => {
                    ready!(Pin::new(&mut me.tcp).poll_shutdown(cx))?;
                    me.linger = Linger::Draining {
                        left: LINGER_BYTES,
                        deadline: None,
                    };
                }
                Linger::Draining { left, deadline } => {
                    let mut scratch = [0u8; 4096];
                    let mut rb = ReadBuf::new(&mut scratch);
                    match Pin::new(&mut me.tcp).poll_read(cx, &mut rb) {
                        Poll::Ready(Ok(())) if !rb.filled().is_empty() => {
                            *left = left.saturating_sub(rb.filled().len());
                            if *left == 0 {
                                me.linger = Linger::Done;
                            }
                        }
                        // EOF or an error: the client is done too.
                        Poll::Ready(_) => me.linger = Linger::Done,
                        Poll::Pending => {
                            // The timer only exists for clients that keep the socket
                            // open after our FIN.
                            let sleep = deadline
                                .get_or_insert_with(|| Box::pin(tokio::time::sleep(LINGER_TIME)));
                            ready!(sleep.as_mut().poll(cx));
                            me.linger = Linger::Done;
                        }
                    }
                }
                Linger::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

//! Pooled HTTP/1.1 connections to plain-HTTP upstreams, kept per worker thread.
//!
//! Most routes forward to plain-HTTP endpoints (pods, Services). For those each data
//! plane worker keeps its own idle connections per endpoint: a request takes one (the
//! most recently used), and its response body gives it back when the body ends. No
//! locks and no hand-offs between threads on the way; HTTPS, h2c and protocol upgrades
//! use the general clients in `upstream.rs`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Authority;
use http::{Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

use super::Body;
use super::reach::UpstreamGuard;
use crate::routes::Reach;

/// Idle connections are closed after this many reaper rounds (60–90 s idle).
const IDLE_ROUNDS: u64 = 3;
/// Idle connections kept per endpoint and worker.
const MAX_IDLE: usize = 1024;
/// How often a worker closes its expired idle connections.
pub const REAP_EVERY: Duration = Duration::from_secs(30);

/// Idle connections are kept per endpoint address and reach: a tenant's endpoint never
/// takes a connection opened for the operator's (which may reach loopback).
type PoolKey = (Authority, Reach);

thread_local! {
    static IDLE: RefCell<HashMap<PoolKey, Vec<Idle>>> = RefCell::new(HashMap::new());
    /// Reaper rounds so far on this thread: the pool's clock, so that taking and
    /// returning a connection reads no clock.
    static ROUND: Cell<u64> = const { Cell::new(0) };
}

struct Idle {
    sender: SendRequest<Body>,
    /// The reaper round it was returned in.
    since: u64,
}

impl Idle {
    fn usable(&self, round: u64) -> bool {
        !self.sender.is_closed() && round - self.since < IDLE_ROUNDS
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No connection could be opened: safe to try another endpoint.
    #[error("connect to {authority}: {reason}")]
    Connect {
        authority: Authority,
        reason: String,
    },
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// A request that did not get an answer, with the request itself when it never left
/// (a connect failure): the caller may send it elsewhere without having kept a copy.
#[derive(Debug)]
pub struct Failed {
    pub error: Error,
    pub unsent: Option<Request<Body>>,
}

/// Sends `req` (origin-form URI, `Host` already set) to `authority`, on an idle pooled
/// connection or a new one that `guard` allows for `reach`. A request that a pooled
/// connection closed before taking it (the upstream timed the idle connection out)
/// goes again on another connection.
pub async fn send(
    authority: &Authority,
    reach: Reach,
    guard: &UpstreamGuard,
    mut req: Request<Body>,
) -> Result<Response<Body>, Failed> {
    let key: PoolKey = (authority.clone(), reach);
    let refused = |reason: String, unsent: Request<Body>| Failed {
        error: Error::Connect {
            authority: authority.clone(),
            reason,
        },
        unsent: Some(unsent),
    };
    loop {
        let (mut sender, fresh) = match checkout(&key) {
            Some(s) => (s, false),
            None => match connect(authority, reach, guard).await {
                Ok(s) => (s, true),
                Err(error) => {
                    return Err(Failed {
                        error,
                        unsent: Some(req),
                    });
                }
            },
        };
        if sender.ready().await.is_err() {
            if fresh {
                return Err(refused("the connection closed at once".into(), req));
            }
            continue;
        }
        match sender.try_send_request(req).await {
            Ok(resp) => {
                return Ok(resp.map(|body| {
                    let body = Pooled {
                        inner: body,
                        slot: Some((key, sender)),
                    };
                    http_body_util::BodyExt::boxed(body)
                }));
            }
            Err(mut e) => match e.take_message() {
                Some(unsent) if !fresh => req = unsent,
                // A new connection that closed before taking the request: as good as
                // refused, so another endpoint may be tried.
                Some(unsent) => {
                    let reason = format!("the connection closed at once: {}", e.error());
                    return Err(refused(reason, unsent));
                }
                None => {
                    return Err(Failed {
                        error: Error::Http(e.into_error()),
                        unsent: None,
                    });
                }
            },
        }
    }
}

/// The most recently used live idle connection to `authority`, dropping closed and
/// expired ones on the way.
fn checkout(key: &PoolKey) -> Option<SendRequest<Body>> {
    let round = ROUND.with(Cell::get);
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.get_mut(key)?;
        while let Some(c) = list.pop() {
            if c.usable(round) {
                return Some(c.sender);
            }
        }
        None
    })
}

/// Returns a connection to the pool once it can take a new request. Usually that is
/// at once; a connection still sending the request body (the upstream answered before
/// reading it all) is returned when it is done, so no request waits behind it.
fn checkin(key: PoolKey, mut sender: SendRequest<Body>) {
    if sender.is_closed() {
        return;
    }
    if !sender.is_ready() {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if sender.ready().await.is_ok() {
                    checkin(key, sender);
                }
            });
        }
        return;
    }
    let _ = IDLE.try_with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.entry(key).or_default();
        if list.len() < MAX_IDLE {
            list.push(Idle {
                sender,
                since: ROUND.with(Cell::get),
            });
        }
    });
}

/// Starts a new round and closes this thread's expired and closed idle connections
/// (each worker runs it every [`REAP_EVERY`]).
pub fn reap() {
    let Ok(round) = ROUND.try_with(|r| {
        r.set(r.get() + 1);
        r.get()
    }) else {
        return;
    };
    let _ = IDLE.try_with(|idle| {
        let mut idle = idle.borrow_mut();
        for list in idle.values_mut() {
            list.retain(|c| c.usable(round));
        }
        idle.retain(|_, list| !list.is_empty());
    });
}

async fn connect(
    authority: &Authority,
    reach: Reach,
    guard: &UpstreamGuard,
) -> Result<SendRequest<Body>, Error> {
    let failed = |reason: String| Error::Connect {
        authority: authority.clone(),
        reason,
    };
    let port = authority.port_u16().unwrap_or(80);
    let stream = super::reach::connect(guard, reach, authority.host(), port)
        .await
        .map_err(failed)?;
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failed(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

/// A response body that returns its connection to the pool once it has ended. A body
/// dropped before its end leaves the connection mid-message: it is closed instead.
struct Pooled {
    inner: Incoming,
    slot: Option<(PoolKey, SendRequest<Body>)>,
}

impl Pooled {
    /// Gives the connection back (once).
    fn release(&mut self) {
        if let Some((key, sender)) = self.slot.take() {
            checkin(key, sender);
        }
    }
}

impl HttpBody for Pooled {
    type Data = Bytes;
    type Error = super::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            // The end; trailers end a chunked body, which never reports its end
            // otherwise.
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Ok(frame))) if frame.is_trailers() || self.inner.is_end_stream() => {
                self.release()
            }
            Poll::Ready(Some(Ok(_))) => {}
            Poll::Ready(Some(Err(_))) => self.slot = None,
            Poll::Pending => {}
        }
        polled.map(|f| f.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}

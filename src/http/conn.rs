//! The connection layer under the router: hyper's HTTP/1 server, configured so a client
//! cannot hold the service's connections or memory by being slow.
//!
//! - **Header-read timeout** (`server.headerreadtimeoutms`): hyper's own, with its timer
//!   installed. A request whose head does not arrive in time gets its connection closed.
//! - **Idle keep-alive timeout** (`server.idletimeoutseconds`): how long a connection may
//!   wait for the first byte of its next request. Hyper starts its header timer as soon as
//!   it waits for a request, which would close idle keep-alive connections after the
//!   (short) header timeout, below the load balancer's idle timeout: the ALB would then
//!   send requests down connections the service is closing (502s). [`ConnTimer`] is the
//!   timer hyper is given: it counts the wait before the first byte against the idle
//!   timeout and only the rest against the header timeout (as Go's server does).
//! - **Connection cap** (`server.maxconnections`): a permit per open connection; at the
//!   cap the listener stops accepting, so further clients wait in the kernel's backlog.
//! - **Lingering close**: when hyper closes a connection whose request body it did not
//!   read (a 413 answered from `Content-Length`), the socket first sends its FIN, then
//!   reads and discards a bounded amount of what the client is still sending, as nginx's
//!   `lingering_close` does. A client that writes its whole body before reading (Python's
//!   urllib and requests) then reads the 413 instead of a connection reset.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Most bytes a lingering close reads and discards.
pub const LINGER_MAX_BYTES: u64 = 16 << 20;
/// Longest a lingering close waits for the client to stop sending.
pub const LINGER_MAX_TIME: Duration = Duration::from_secs(5);
/// A lingering close ends when the client sent nothing for this long (nginx's
/// `lingering_timeout`): a client that is not sending costs no wait.
pub const LINGER_QUIET: Duration = Duration::from_millis(500);

/// What the connection layer is configured with (from `server.*`).
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// Accepts connections on `listener` and serves `app` on each until `stop` resolves; then
/// stops accepting, asks every connection to finish its request in flight and close, and
/// resolves when they all have.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    stop: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let mut stop = std::pin::pin!(stop);
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => break,
            accepted = accept(&listener, &permits) => accepted,
        };
        let Some((stream, peer, permit)) = accepted else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let reads = Arc::new(AtomicU64::new(0));
        let io = TokioIo::new(Conn::new(stream, reads.clone()));
        // The timer goes in before the connection is built: hyper refuses a header-read
        // timeout without one.
        let mut builder = builder.clone();
        builder.timer(ConnTimer {
            reads,
            idle: limits.idle_timeout,
        });
        let service = hyper_util::service::TowerToHyperService::new(app.clone().map_request(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            },
        ));
        let conn = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The next connection, once there is room for it; `None` after an accept error (logged,
/// and paced: running out of file descriptors must not spin the loop).
async fn accept(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
) -> Option<(TcpStream, SocketAddr, tokio::sync::OwnedSemaphorePermit)> {
    let permit = permits.clone().acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, peer)) => Some((stream, peer, permit)),
        Err(e) => {
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// A connection's socket: counts the reads that brought bytes (for [`ConnTimer`]) and
/// closes lingeringly (see the module doc).
struct Conn {
    stream: TcpStream,
    reads: Arc<AtomicU64>,
    closing: Closing,
}

enum Closing {
    Open,
    /// FIN sent; discarding what the client still sends.
    Lingering {
        read: u64,
        until: Pin<Box<tokio::time::Sleep>>,
        quiet: Pin<Box<tokio::time::Sleep>>,
    },
    Done,
}

impl Conn {
    fn new(stream: TcpStream, reads: Arc<AtomicU64>) -> Conn {
        Conn {
            stream,
            reads,
            closing: Closing::Open,
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.stream).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            this.reads.fetch_add(1, Ordering::Relaxed);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    /// Sends the FIN, then reads until the client closes too, [`LINGER_MAX_BYTES`] were
    /// discarded, it was quiet for [`LINGER_QUIET`] or [`LINGER_MAX_TIME`] passed: closing with unread bytes in the socket
    /// would send a reset, and the client would lose the response it has not read yet.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.closing {
                Closing::Open => {
                    ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
                    this.closing = Closing::Lingering {
                        read: 0,
                        until: Box::pin(tokio::time::sleep(LINGER_MAX_TIME)),
                        quiet: Box::pin(tokio::time::sleep(LINGER_QUIET)),
                    };
                }
                Closing::Lingering { read, until, quiet } => {
                    if until.as_mut().poll(cx).is_ready()
                        || quiet.as_mut().poll(cx).is_ready()
                        || *read >= LINGER_MAX_BYTES
                    {
                        this.closing = Closing::Done;
                        continue;
                    }
                    let mut scratch = [0u8; 8192];
                    let mut buf = ReadBuf::new(&mut scratch);
                    match ready!(Pin::new(&mut this.stream).poll_read(cx, &mut buf)) {
                        Ok(()) if !buf.filled().is_empty() => {
                            *read += buf.filled().len() as u64;
                            quiet
                                .as_mut()
                                .reset(tokio::time::Instant::now() + LINGER_QUIET);
                        }
                        // The client closed (or reset): nothing more to wait for.
                        _ => this.closing = Closing::Done,
                    }
                }
                Closing::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

/// The timer hyper's connection uses for its header-read timeout: a sleep it starts
/// counts, until the connection reads its first byte since, against the idle timeout;
/// from that byte on, the header-read timeout hyper asked for applies. The read count is
/// bumped by [`Conn`] inside hyper's own poll, before hyper polls the sleep, so no waker
/// is needed for it.
#[derive(Clone)]
struct ConnTimer {
    reads: Arc<AtomicU64>,
    idle: Duration,
}

impl hyper::rt::Timer for ConnTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(IdleThenHead {
            reads: self.reads.clone(),
            seen: self.reads.load(Ordering::Relaxed),
            head: Some(duration),
            sleep: Box::pin(tokio::time::sleep(self.idle.max(duration))),
        })
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep(deadline.saturating_duration_since(Instant::now()))
    }
}

/// See [`ConnTimer`]. `head` is `Some` until the first byte arrives.
struct IdleThenHead {
    reads: Arc<AtomicU64>,
    seen: u64,
    head: Option<Duration>,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Future for IdleThenHead {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let Some(head) = this.head
            && this.reads.load(Ordering::Relaxed) != this.seen
        {
            this.head = None;
            this.sleep
                .as_mut()
                .reset(tokio::time::Instant::now() + head);
        }
        this.sleep.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for IdleThenHead {}

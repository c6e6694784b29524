//! The clock of a connection waiting for a request head.
//!
//! hyper starts its header timer as soon as a connection is ready for a
//! head: on accepting it, and again as soon as a kept-alive connection has
//! sent its response. On its own that makes the keep-alive wait the header
//! timeout's. [`HeadClock`] is the timer hyper is given: a new connection
//! has `header_read_timeout` from its accept, as hyper counts; a kept-alive
//! one has `idle_timeout` for the first byte of its next request, then
//! `header_read_timeout` from that byte. It reads what the connection has
//! done from [`Activity`], which [`Counted`] (the connection's IO) and the
//! service keep up to date, and leaves there which of the two ran out.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use hyper::rt::{Sleep, Timer};
use hyper_util::rt::TokioTimer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What one connection has done so far.
#[derive(Debug, Default)]
pub(super) struct Activity {
    /// Bytes read from the client.
    read: AtomicU64,
    /// Request heads read.
    requests: AtomicU64,
    /// The last head clock that ran out had heard nothing of its head.
    silent: AtomicBool,
}

impl Activity {
    /// A request head was read.
    pub(super) fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the head clock that closed the connection had heard nothing
    /// (an idle client, not a slow one).
    pub(super) fn was_silent(&self) -> bool {
        self.silent.load(Ordering::Relaxed)
    }

    fn read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }
}

/// The timer hyper's header read timeout runs on (see the module).
#[derive(Debug, Clone)]
pub(super) struct HeadClock {
    activity: Arc<Activity>,
    header: Duration,
    idle: Duration,
}

impl HeadClock {
    /// A clock for the connection whose `activity` it reads.
    pub(super) fn new(activity: Arc<Activity>, header: Duration, idle: Duration) -> HeadClock {
        HeadClock {
            activity,
            header,
            idle,
        }
    }
}

impl Timer for HeadClock {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        TokioTimer::new().sleep(duration)
    }

    /// hyper asks for `deadline` = now + `header_read_timeout` whenever it
    /// starts waiting for a head.
    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        let kept_alive = self.activity.requests.load(Ordering::Relaxed) > 0;
        let until = if kept_alive {
            Instant::now() + self.idle
        } else {
            deadline
        };
        Box::pin(HeadSleep {
            activity: self.activity.clone(),
            header: self.header,
            kept_alive,
            read_at_start: self.activity.read(),
            heard: false,
            sleep: Box::pin(tokio::time::sleep_until(until.into())),
        })
    }
}

/// One wait for a head.
struct HeadSleep {
    activity: Arc<Activity>,
    header: Duration,
    kept_alive: bool,
    read_at_start: u64,
    heard: bool,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Future for HeadSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // hyper polls its timer each time a read leaves the head
        // incomplete, so the first byte is seen as it arrives.
        if !this.heard && this.activity.read() > this.read_at_start {
            this.heard = true;
            if this.kept_alive {
                let until = Instant::now() + this.header;
                this.sleep.as_mut().reset(until.into());
            }
        }
        ready!(this.sleep.as_mut().poll(cx));
        this.activity.silent.store(!this.heard, Ordering::Relaxed);
        Poll::Ready(())
    }
}

impl Sleep for HeadSleep {}

/// A connection's IO, counting the bytes read into its [`Activity`].
#[derive(Debug)]
pub(super) struct Counted<T> {
    io: T,
    activity: Arc<Activity>,
}

impl<T> Counted<T> {
    /// `io`, counted into `activity`.
    pub(super) fn new(io: T, activity: Arc<Activity>) -> Counted<T> {
        Counted { io, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.activity.read.fetch_add(n as u64, Ordering::Relaxed);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

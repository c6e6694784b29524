//! One TCP connect attempt to one address: non-blocking `connect(2)` through
//! socket2, completion awaited on tokio's reactor, the latency read from the
//! kernel. No retries and no happy eyeballs: one SYN per attempt (plus the
//! kernel's own SYN retransmits, which are counted, not hidden).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::outcome::ConnectOutcome;
use crate::result::{ConnectAttempt, Timestamp};
use crate::tcp_info;

/// How to connect: the per-target knobs of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Give up after this long; the attempt is then a `timeout`.
    pub timeout: Duration,
    /// Bind to this local address first (to compare egress paths).
    pub source: Option<IpAddr>,
    /// Bind to this network device (`SO_BINDTODEVICE`; needs CAP_NET_RAW).
    pub bind_device: Option<Arc<str>>,
}

/// Makes one connect attempt and reports what happened. Never panics and
/// never returns an error: every failure is a classified outcome.
pub async fn attempt(address: SocketAddr, options: &ConnectOptions) -> ConnectAttempt {
    let started_at = Timestamp::now();
    let start = Instant::now();
    let socket = match open(address, options) {
        Ok(s) => s,
        Err(err) => return failure(address, None, started_at, start, &err, 0),
    };
    match socket.connect(&SockAddr::from(address)) {
        Ok(()) => {}
        Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(err) => {
            let local = local_addr(&socket);
            let retrans = tcp_info::read(&socket).map_or(0, |i| i.total_retrans);
            return failure(address, local, started_at, start, &err, retrans);
        }
    }
    let local = local_addr(&socket);
    // Registered for writability only: completion (or failure) of the
    // handshake is the one event this attempt waits for.
    // SAFETY: the `Socket` owns its descriptor and the `AsyncFd` owns the
    // `Socket`, so the descriptor stays open, and the same, until the
    // `AsyncFd` is dropped (which deregisters before closing).
    #[allow(unsafe_code)]
    let registered = unsafe { AsyncFd::register_with_interest(socket, Interest::WRITABLE) };
    let stream = match registered {
        Ok(s) => s,
        Err(err) => {
            let (_, err) = err.into_parts();
            return failure(address, local, started_at, start, &err, 0);
        }
    };

    let completion = tokio::time::timeout(options.timeout, established(&stream)).await;
    let duration = start.elapsed();
    let mut attempt = ConnectAttempt {
        address,
        local,
        started_at,
        outcome: ConnectOutcome::Ok,
        duration_us: micros(duration),
        rtt_us: None,
        syn_retransmits: 0,
        errno: None,
    };
    match completion {
        Ok(Ok(info)) => {
            attempt.rtt_us = Some(info.rtt_us);
            attempt.syn_retransmits = info.total_retrans;
        }
        failed => {
            attempt.outcome = match &failed {
                Ok(Err(err)) => {
                    attempt.errno = err.raw_os_error();
                    ConnectOutcome::from_io_error(err)
                }
                // An ICMP answer queued without a wake-up still counts.
                _ => match crate::icmp::answered(stream.get_ref()) {
                    Some(err) => {
                        attempt.errno = err.raw_os_error();
                        ConnectOutcome::from_io_error(&err)
                    }
                    None => ConnectOutcome::Timeout,
                },
            };
            attempt.syn_retransmits =
                tcp_info::read(stream.get_ref()).map_or(0, |i| i.total_retrans);
        }
    }
    attempt
}

/// Waits until the handshake completed (returning the kernel's view of it)
/// or failed. Readiness alone is not trusted: the socket's own error and TCP
/// state decide.
async fn established(stream: &AsyncFd<Socket>) -> io::Result<tcp_info::TcpInfo> {
    loop {
        let mut ready = stream.writable().await?;
        // One getsockopt on the common path: the TCP state says whether the
        // handshake completed; only a closed socket needs SO_ERROR for why.
        let info = tcp_info::read(stream.get_ref())?;
        match info.state {
            // An ICMP unreachable the kernel took as a soft error (it came
            // while the socket was held) is still the path's answer.
            tcp_info::STATE_SYN_SENT => match crate::icmp::answered(stream.get_ref()) {
                Some(err) => return Err(err),
                // A spurious wake-up: wait for the real event.
                None => ready.clear_ready(),
            },
            tcp_info::STATE_CLOSE => {
                return Err(stream
                    .get_ref()
                    .take_error()?
                    .unwrap_or_else(|| io::Error::from(io::ErrorKind::ConnectionAborted)));
            }
            // Past SYN_SENT means the handshake completed, even if the peer
            // already closed (CLOSE_WAIT): a server that accepts and hangs
            // up has still accepted.
            _ => return Ok(info),
        }
    }
}

fn open(address: SocketAddr, options: &ConnectOptions) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    crate::icmp::enable(&socket, address.is_ipv6())?;
    if let Some(device) = &options.bind_device {
        socket.bind_device(Some(device.as_bytes()))?;
    }
    if let Some(source) = options.source {
        socket.bind(&SockAddr::from(SocketAddr::new(source, 0)))?;
    }
    Ok(socket)
}

fn local_addr(socket: &Socket) -> Option<SocketAddr> {
    socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .filter(|a| a.port() != 0)
}

fn failure(
    address: SocketAddr,
    local: Option<SocketAddr>,
    started_at: Timestamp,
    start: Instant,
    err: &io::Error,
    syn_retransmits: u32,
) -> ConnectAttempt {
    ConnectAttempt {
        address,
        local,
        started_at,
        outcome: ConnectOutcome::from_io_error(err),
        duration_us: micros(start.elapsed()),
        rtt_us: None,
        syn_retransmits,
        errno: err.raw_os_error(),
    }
}

/// Whole microseconds, saturating.
pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

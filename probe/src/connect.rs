//! One TCP connect attempt to one address: non-blocking `connect(2)` through
//! socket2, completion awaited on tokio's reactor, the latency read from the
//! kernel. No retries and no happy eyeballs: one SYN per attempt (plus the
//! kernel's own SYN retransmits, which are counted, not hidden).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::config::ConnectOptions;
use crate::outcome::ConnectOutcome;
use crate::result::{ConnectAttempt, Timestamp};
use crate::tcp_info;

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
        icmp_from: None,
    };
    match completion {
        Ok(Ok(info)) => {
            attempt.syn_retransmits = info.total_retrans;
            // A retransmitted handshake has no true RTT sample: the
            // kernel's figure is a placeholder or a timeout.
            attempt.rtt_us = (info.total_retrans == 0).then_some(info.rtt_us);
        }
        failed => {
            let failure = match failed {
                Ok(Err(f)) => Some(f),
                // An ICMP answer queued without a wake-up still counts.
                _ => crate::icmp::answered(stream.get_ref()).map(Failure::from),
            };
            match failure {
                Some(f) => {
                    attempt.outcome = ConnectOutcome::from_io_error(&f.error);
                    attempt.errno = f.error.raw_os_error();
                    attempt.icmp_from = f.from;
                }
                None => attempt.outcome = ConnectOutcome::Timeout,
            }
            attempt.syn_retransmits =
                tcp_info::read(stream.get_ref()).map_or(0, |i| i.total_retrans);
        }
    }
    attempt
}

/// Why a handshake failed, and who said so when an ICMP did.
struct Failure {
    error: io::Error,
    from: Option<IpAddr>,
}

impl From<crate::icmp::Answer> for Failure {
    fn from(a: crate::icmp::Answer) -> Failure {
        Failure {
            error: a.error,
            from: a.from,
        }
    }
}

impl From<io::Error> for Failure {
    fn from(error: io::Error) -> Failure {
        Failure { error, from: None }
    }
}

/// Waits until the handshake completed (returning the kernel's view of it)
/// or failed. Readiness alone is not trusted: the socket's own error and TCP
/// state decide.
async fn established(stream: &AsyncFd<Socket>) -> Result<tcp_info::TcpInfo, Failure> {
    loop {
        let mut ready = stream.writable().await?;
        // One getsockopt on the common path: the TCP state says whether the
        // handshake completed; only a closed socket needs SO_ERROR for why.
        let info = tcp_info::read(stream.get_ref())?;
        match info.state {
            // An ICMP unreachable the kernel took as a soft error (it came
            // while the socket was held) is still the path's answer.
            tcp_info::STATE_SYN_SENT => match crate::icmp::answered(stream.get_ref()) {
                Some(answer) => return Err(answer.into()),
                // A spurious wake-up: wait for the real event.
                None => ready.clear_ready(),
            },
            tcp_info::STATE_CLOSE => {
                let error = stream
                    .get_ref()
                    .take_error()?
                    .unwrap_or_else(|| io::Error::from(io::ErrorKind::ConnectionAborted));
                // An ICMP that failed the connect outright is queued too,
                // with its sender; a reset leaves the queue empty.
                let from = crate::icmp::answered(stream.get_ref()).and_then(|a| a.from);
                return Err(Failure { error, from });
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
        icmp_from: None,
    }
}

/// Whole microseconds, saturating.
pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

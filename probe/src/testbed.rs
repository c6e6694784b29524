//! Real backends on loopback for the demo, the tests and the benchmarks:
//! a listener that accepts, a port that refuses, a listener whose accept
//! queue is full (so SYNs to it are dropped and connects time out), and a
//! small DNS server that answers, fails or stays silent on request.
//!
//! Everything here binds loopback addresses only and refuses anything else:
//! nothing in this module can send a packet off the machine.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

/// A listener that accepts every connection and closes it at once.
#[derive(Debug)]
pub struct Accepting {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

/// A port with a socket bound but not listening: SYNs get a RST.
#[derive(Debug)]
pub struct Refusing {
    /// Where connects are refused.
    pub addr: SocketAddr,
    _socket: Socket,
}

/// A listener with a backlog of zero whose one queue slot is taken: the
/// kernel drops every further SYN, so connects to it time out after the
/// usual SYN retransmits. [`FullQueue::accept_one`] frees the slot.
#[derive(Debug)]
pub struct FullQueue {
    /// Where it listens.
    pub addr: SocketAddr,
    listener: std::net::TcpListener,
    _filler: std::net::TcpStream,
}

/// What the test DNS server answers for a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// These addresses (A for IPv4, AAAA for IPv6; the other type gets an
    /// empty NOERROR answer).
    Addresses(Vec<IpAddr>),
    /// NXDOMAIN.
    NxDomain,
    /// SERVFAIL.
    ServFail,
    /// REFUSED.
    Refused,
    /// No answer at all.
    Silence,
}

/// A UDP DNS server on loopback with a fixed zone; unknown names are NXDOMAIN.
#[derive(Debug)]
pub struct DnsServer {
    /// Where it listens (UDP).
    pub addr: SocketAddr,
    queries: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

fn loopback_only(ip: IpAddr) -> io::Result<()> {
    if ip.is_loopback() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("testbed backends bind loopback only, not {ip}"),
        ))
    }
}

impl Accepting {
    /// Listens on `addr` (port 0 picks one).
    pub async fn bind(addr: SocketAddr) -> io::Result<Accepting> {
        loopback_only(addr.ip())?;
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            loop {
                if let Ok((stream, _)) = listener.accept().await {
                    drop(stream);
                }
            }
        });
        Ok(Accepting { addr, task })
    }

    /// Stops listening and keeps the port, refusing from now on: a backend
    /// that goes down while probes measure it.
    pub async fn refuse(mut self) -> io::Result<Refusing> {
        self.task.abort();
        // The listener is closed once its task is gone.
        let _ = (&mut self.task).await;
        Refusing::bind_reusing(self.addr)
    }
}

impl Drop for Accepting {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Refusing {
    /// Reserves a port on `ip` that refuses connections.
    pub fn bind(ip: IpAddr) -> io::Result<Refusing> {
        Refusing::bind_addr(SocketAddr::new(ip, 0))
    }

    /// Reserves `addr` (port 0 picks one) so that it refuses connections.
    pub fn bind_addr(addr: SocketAddr) -> io::Result<Refusing> {
        Refusing::bind_with(addr, false)
    }

    /// [`Refusing::bind_addr`] on a port a listener just closed, whose
    /// closed connections still wait out TIME_WAIT on it.
    fn bind_reusing(addr: SocketAddr) -> io::Result<Refusing> {
        Refusing::bind_with(addr, true)
    }

    fn bind_with(addr: SocketAddr, reuse: bool) -> io::Result<Refusing> {
        loopback_only(addr.ip())?;
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(reuse)?;
        socket.bind(&SockAddr::from(addr))?;
        let addr = socket
            .local_addr()?
            .as_socket()
            .expect("an inet socket has an inet address");
        Ok(Refusing {
            addr,
            _socket: socket,
        })
    }
}

impl FullQueue {
    /// Listens on `ip` with a full accept queue.
    pub fn bind(ip: IpAddr) -> io::Result<FullQueue> {
        loopback_only(ip)?;
        let addr = SocketAddr::new(ip, 0);
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.bind(&SockAddr::from(addr))?;
        socket.listen(0)?;
        let listener: std::net::TcpListener = socket.into();
        let addr = listener.local_addr()?;
        // With a backlog of 0 one established connection fills the queue.
        let filler = std::net::TcpStream::connect(addr)?;
        listener.set_nonblocking(true)?;
        Ok(FullQueue {
            addr,
            listener,
            _filler: filler,
        })
    }

    /// Accepts one queued connection, freeing the slot for the next SYN.
    pub fn accept_one(&self) -> io::Result<()> {
        self.listener.accept().map(drop)
    }
}

impl DnsServer {
    /// Serves `zone` (names without the trailing dot) on `addr`'s UDP port.
    pub async fn bind(addr: SocketAddr, zone: HashMap<String, Answer>) -> io::Result<DnsServer> {
        loopback_only(addr.ip())?;
        let socket = UdpSocket::bind(addr).await?;
        let addr = socket.local_addr()?;
        let queries = Arc::new(AtomicU64::new(0));
        let counter = queries.clone();
        let zone: HashMap<String, Answer> = zone
            .into_iter()
            .map(|(k, v)| (k.trim_end_matches('.').to_ascii_lowercase(), v))
            .collect();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                counter.fetch_add(1, Ordering::Relaxed);
                if let Some(reply) = respond(&buf[..n], &zone) {
                    let _ = socket.send_to(&reply, peer).await;
                }
            }
        });
        Ok(DnsServer {
            addr,
            queries,
            task,
        })
    }

    /// Queries received so far (each A or AAAA lookup is one).
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn respond(request: &[u8], zone: &HashMap<String, Answer>) -> Option<Vec<u8>> {
    let request = Message::from_vec(request).ok()?;
    let query = request.queries.first()?.clone();
    let name = query.name().to_string();
    let key = name.trim_end_matches('.').to_ascii_lowercase();
    let mut reply = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.metadata.authoritative = true;
    reply.add_query(query.clone());
    match zone.get(&key) {
        None | Some(Answer::NxDomain) => reply.metadata.response_code = ResponseCode::NXDomain,
        Some(Answer::ServFail) => reply.metadata.response_code = ResponseCode::ServFail,
        Some(Answer::Refused) => reply.metadata.response_code = ResponseCode::Refused,
        Some(Answer::Silence) => return None,
        Some(Answer::Addresses(ips)) => {
            for ip in ips {
                let rdata = match (ip, query.query_type()) {
                    (IpAddr::V4(v4), RecordType::A) => RData::A(A(*v4)),
                    (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(*v6)),
                    _ => continue,
                };
                reply.add_answer(Record::from_rdata(query.name().clone(), 30, rdata));
            }
        }
    }
    reply.to_vec().ok()
}

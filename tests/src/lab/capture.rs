//! Ground truth from the wire: `tcpdump` captures inside a lab namespace,
//! and a parser that turns them into handshakes. Each handshake is keyed by
//! its local and remote address, which is what a probe result records
//! (`local`), so every attempt can be matched to its packets.
//!
//! The pcap container is read here (three fixed-size little headers); the
//! packets themselves are parsed by `etherparse`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use etherparse::{Ipv4HeaderSlice, LaxNetSlice, LaxSlicedPacket, TransportSlice};
use vantage_probe::result::ConnectAttempt;

/// How the far side (or the path) answered a handshake's SYN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireAnswer {
    /// A SYN-ACK: the handshake completed.
    SynAck,
    /// A TCP reset.
    Reset,
    /// An ICMP destination unreachable, with its code (0 net, 1 host,
    /// 3 port, 10 host prohibited, 13 administratively prohibited).
    Unreachable(u8),
}

/// One handshake seen on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct Handshake {
    /// The connecting side.
    pub local: SocketAddrV4,
    /// The side connected to.
    pub remote: SocketAddrV4,
    /// When the first SYN left, in nanoseconds since the Unix epoch.
    pub first_syn_ns: u64,
    /// When the last SYN before the answer left.
    pub last_syn_ns: u64,
    /// SYNs sent with the same sequence number (1 when none was
    /// retransmitted), answered or not.
    pub syns: u32,
    /// The first answer and when it came; `None` when nothing came.
    pub answer: Option<(WireAnswer, u64)>,
    /// Who sent that answer: the target for a SYN-ACK or a reset, the
    /// router (or host) that gave up for an ICMP.
    pub answered_by: Option<Ipv4Addr>,
}

impl Handshake {
    /// The SYN -> answer time of the last SYN, in microseconds.
    pub fn answer_us(&self) -> Option<f64> {
        self.answer
            .map(|(_, at)| at.saturating_sub(self.last_syn_ns) as f64 / 1e3)
    }
}

/// A `tcpdump` running inside a namespace.
#[derive(Debug)]
pub struct Capture {
    child: Child,
    path: PathBuf,
}

impl Capture {
    /// Starts capturing TCP and ICMP on `iface` inside `ns` into
    /// `<dir>/<label>.pcap`; returns once tcpdump is listening.
    pub fn start(ns: &str, iface: &str, dir: &Path, label: &str) -> Capture {
        let path = dir.join(format!("{label}.pcap"));
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "tcpdump", "-i", iface, "-n", "-U"])
            .args(["-s", "128", "-B", "8192", "--time-stamp-precision=nano"])
            .arg("-w")
            .arg(&path)
            .args(["tcp or icmp"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("lab: starting tcpdump: {e}"));
        // tcpdump says "listening on ..." once its socket is open.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stderr).lines();
            for line in lines.by_ref().map_while(Result::ok) {
                let ready = line.contains("listening on");
                let _ = tx.send(line);
                if ready {
                    break;
                }
            }
            // Keep draining so tcpdump never blocks on a full pipe.
            for _ in lines {}
        });
        let mut said = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(line) if line.contains("listening on") => break,
                Ok(line) => said.push(line),
                Err(_) => {
                    let _ = child.kill();
                    panic!("lab: tcpdump in {ns} did not start: {}", said.join("\n"));
                }
            }
        }
        Capture { child, path }
    }

    /// Waits until the capture shows a handshake to `marker` begun after
    /// this call, connecting to it from `ns` every 100 ms. Before the first
    /// measurement: tcpdump says it is listening a little before packets
    /// reach the file. Before [`Capture::stop`]: packets still in the
    /// kernel's buffer are lost when tcpdump stops. Panics after 10 s.
    pub fn wait_until_seen(&self, ns: &str, marker: SocketAddr) {
        let since_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            super::in_ns(ns, move || {
                drop(std::net::TcpStream::connect_timeout(
                    &marker,
                    Duration::from_millis(100),
                ))
            });
            let raw = std::fs::read(&self.path).unwrap_or_default();
            let seen = |hs: Vec<Handshake>| {
                hs.iter()
                    .any(|h| SocketAddr::from(h.remote) == marker && h.first_syn_ns >= since_ns)
            };
            if handshakes(&raw).is_ok_and(seen) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("lab: the capture in {ns} never showed a connect to {marker}");
    }

    /// Stops the capture (SIGINT, so that tcpdump flushes) and parses it.
    pub fn stop(mut self) -> Vec<Handshake> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        let _ = self.child.wait();
        let raw = std::fs::read(&self.path)
            .unwrap_or_else(|e| panic!("lab: reading {}: {e}", self.path.display()));
        handshakes(&raw).unwrap_or_else(|e| panic!("lab: {}: {e}", self.path.display()))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One captured packet: its time (ns since the epoch) and its bytes.
fn packets(raw: &[u8]) -> Result<Vec<(u64, &[u8])>, String> {
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
    if raw.len() < 24 {
        return Err("shorter than a pcap header".into());
    }
    let frac_ns = match u32_at(raw, 0) {
        0xa1b2_3c4d => 1,
        0xa1b2_c3d4 => 1_000,
        m => return Err(format!("not a little-endian pcap file (magic {m:#x})")),
    };
    let link = u32_at(raw, 20);
    if link != 1 {
        return Err(format!("link type {link}, expected Ethernet (1)"));
    }
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= raw.len() {
        let (sec, frac, len) = (
            u32_at(raw, at) as u64,
            u32_at(raw, at + 4) as u64,
            u32_at(raw, at + 8) as usize,
        );
        let data = raw
            .get(at + 16..at + 16 + len)
            .ok_or_else(|| format!("record at byte {at} runs past the end"))?;
        out.push((sec * 1_000_000_000 + frac * frac_ns, data));
        at += 16 + len;
    }
    Ok(out)
}

/// Every handshake in a capture taken on the connecting side, in the order
/// their first SYNs left. A SYN with the sequence number of an unanswered
/// is its retransmission; any other SYN starts a handshake, even on a
/// reused local port.
pub fn handshakes(raw: &[u8]) -> Result<Vec<Handshake>, String> {
    type Key = (SocketAddrV4, SocketAddrV4);
    // Per connection key: every handshake on it, and the newest one's ISN.
    let mut by_key: HashMap<Key, Vec<(u32, Handshake)>> = HashMap::new();
    let answer = |by_key: &mut HashMap<Key, Vec<(u32, Handshake)>>, key, what, t, by| {
        if let Some((_, h)) = by_key.get_mut(&key).and_then(|v| v.last_mut())
            && h.answer.is_none()
        {
            h.answer = Some((what, t));
            h.answered_by = Some(by);
        }
    };
    for (t, data) in packets(raw)? {
        let Ok(p) = LaxSlicedPacket::from_ethernet(data) else {
            continue;
        };
        let Some(LaxNetSlice::Ipv4(ip)) = &p.net else {
            continue;
        };
        let (src, dst) = (ip.header().source_addr(), ip.header().destination_addr());
        match &p.transport {
            Some(TransportSlice::Tcp(tcp)) => {
                let from = SocketAddrV4::new(src, tcp.source_port());
                let to = SocketAddrV4::new(dst, tcp.destination_port());
                if tcp.syn() && !tcp.ack() {
                    let isn = tcp.sequence_number();
                    let list = by_key.entry((from, to)).or_default();
                    match list.last_mut() {
                        // The kernel retransmits after an ICMP unreachable
                        // too (a soft error in SYN_SENT); the answer timed is
                        // the first.
                        Some((seq, h)) if *seq == isn => {
                            h.syns += 1;
                            if h.answer.is_none() {
                                h.last_syn_ns = t;
                            }
                        }
                        _ => list.push((
                            isn,
                            Handshake {
                                local: from,
                                remote: to,
                                first_syn_ns: t,
                                last_syn_ns: t,
                                syns: 1,
                                answer: None,
                                answered_by: None,
                            },
                        )),
                    }
                } else if tcp.syn() && tcp.ack() {
                    answer(&mut by_key, (to, from), WireAnswer::SynAck, t, src);
                } else if tcp.rst() {
                    answer(&mut by_key, (to, from), WireAnswer::Reset, t, src);
                }
            }
            Some(TransportSlice::Icmpv4(icmp)) if icmp.type_u8() == 3 => {
                // The payload quotes the packet that could not be delivered.
                let quoted = icmp.payload();
                let Ok(inner) = Ipv4HeaderSlice::from_slice(quoted) else {
                    continue;
                };
                let ports = &quoted[inner.slice().len()..];
                if inner.protocol() != etherparse::IpNumber::TCP || ports.len() < 4 {
                    continue;
                }
                let port = |i: usize| u16::from_be_bytes([ports[i], ports[i + 1]]);
                let from = SocketAddrV4::new(inner.source_addr(), port(0));
                let to = SocketAddrV4::new(inner.destination_addr(), port(2));
                answer(
                    &mut by_key,
                    (from, to),
                    WireAnswer::Unreachable(icmp.code_u8()),
                    t,
                    src,
                );
            }
            _ => {}
        }
    }
    let mut out: Vec<Handshake> = by_key.into_values().flatten().map(|(_, h)| h).collect();
    out.sort_by_key(|h| h.first_syn_ns);
    Ok(out)
}

/// Each attempt with its handshake on the wire: the one with the attempt's
/// local and remote address whose first SYN is nearest the attempt's start
/// (`None` when the capture has no such SYN).
pub fn matched<'a>(
    attempts: &'a [ConnectAttempt],
    handshakes: &'a [Handshake],
) -> Vec<(&'a ConnectAttempt, Option<&'a Handshake>)> {
    let mut by_key: HashMap<(SocketAddr, SocketAddr), Vec<&Handshake>> = HashMap::new();
    for h in handshakes {
        by_key
            .entry((h.local.into(), h.remote.into()))
            .or_default()
            .push(h);
    }
    attempts
        .iter()
        .map(|a| {
            let start_ns = a.started_at.unix_micros() as i128 * 1_000;
            let h = a
                .local
                .and_then(|l| by_key.get(&(l, a.address)))
                .and_then(|v| {
                    v.iter()
                        .min_by_key(|h| (h.first_syn_ns as i128 - start_ns).abs())
                        .copied()
                });
            (a, h)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn v4(a: [u8; 4], port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(a), port)
    }

    /// A pcap file (nanosecond magic, Ethernet) of the given frames.
    fn pcap(frames: &[(u64, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for v in [0xa1b2_3c4d_u32, 0x0004_0002, 0, 0, 65535, 1] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for (t, f) in frames {
            for v in [
                (t / 1_000_000_000) as u32,
                (t % 1_000_000_000) as u32,
                f.len() as u32,
                f.len() as u32,
            ] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(f);
        }
        out
    }

    fn tcp(from: SocketAddrV4, to: SocketAddrV4, syn: bool, ack: bool, rst: bool) -> Vec<u8> {
        let mut h = etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4(from.ip().octets(), to.ip().octets(), 64)
            .tcp(from.port(), to.port(), 1, 64240);
        if syn {
            h = h.syn();
        }
        if ack {
            h = h.ack(1);
        }
        if rst {
            h = h.rst();
        }
        let mut out = Vec::new();
        h.write(&mut out, &[]).unwrap();
        out
    }

    #[test]
    fn handshakes_are_told_apart_by_their_answers() {
        let (a, b, c, d) = (
            v4([10, 10, 0, 2], 40001),
            v4([10, 10, 0, 2], 40002),
            v4([10, 10, 0, 2], 40003),
            v4([10, 10, 0, 2], 40004),
        );
        let s = v4([10, 20, 0, 2], 8000);
        let syn = tcp(a, s, true, false, false);
        let frames = vec![
            (1_000_000_000, syn.clone()),
            (1_000_100_000, tcp(b, s, true, false, false)),
            (1_000_150_000, tcp(s, b, false, true, true)),
            (1_000_200_000, tcp(c, s, true, false, false)),
            // a's SYN is lost once and retransmitted after 1 s.
            (2_000_000_000, syn),
            (2_000_080_500, tcp(s, a, true, true, false)),
            (2_000_300_000, tcp(d, s, true, false, false)),
        ];
        let hs = handshakes(&pcap(&frames)).unwrap();
        assert_eq!(hs.len(), 4);
        assert_eq!(hs[0].local, a);
        assert_eq!(hs[0].syns, 2);
        assert_eq!(hs[0].answer, Some((WireAnswer::SynAck, 2_000_080_500)));
        assert_eq!(hs[0].answer_us(), Some(80.5));
        assert_eq!(hs[1].answer, Some((WireAnswer::Reset, 1_000_150_000)));
        assert_eq!(hs[1].answered_by, Some(*hs[1].remote.ip()));
        assert_eq!(hs[2].answer, None);
        assert_eq!(hs[2].answered_by, None);
        assert_eq!(hs[2].answer_us(), None);
        assert_eq!(hs[3].local, d);
    }

    #[test]
    fn an_icmp_unreachable_answers_the_syn_it_quotes() {
        let a = v4([10, 10, 0, 2], 40001);
        let s = v4([10, 20, 0, 2], 8000);
        let syn = tcp(a, s, true, false, false);
        // ICMP host unreachable from the router, quoting the SYN's IP header
        // and first 8 bytes.
        let quoted = &syn[14..14 + 28];
        let mut icmp = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [1; 6])
            .ipv4([10, 10, 0, 1], [10, 10, 0, 2], 64)
            .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::Host,
            ))
            .write(&mut icmp, quoted)
            .unwrap();
        let hs = handshakes(&pcap(&[(5, syn), (905, icmp)])).unwrap();
        assert_eq!(hs.len(), 1);
        assert_eq!(hs[0].answer, Some((WireAnswer::Unreachable(1), 905)));
        assert_eq!(hs[0].answered_by, Some(Ipv4Addr::new(10, 10, 0, 1)));
        assert_eq!(hs[0].answer_us(), Some(0.9));
    }

    #[test]
    fn a_reused_local_port_is_a_new_handshake() {
        let a = v4([10, 10, 0, 2], 40001);
        let s = v4([10, 20, 0, 2], 8000);
        let mut second = tcp(a, s, true, false, false);
        // Another ISN (the TCP sequence number sits 4 bytes into the header).
        second[14 + 20 + 4] ^= 0xff;
        let frames = vec![
            (100, tcp(a, s, true, false, false)),
            (200, tcp(s, a, true, true, false)),
            (5_000, second),
            (5_500, tcp(s, a, true, true, false)),
        ];
        let hs = handshakes(&pcap(&frames)).unwrap();
        assert_eq!(hs.len(), 2);
        assert_eq!(
            (hs[0].syns, hs[0].answer_us(), hs[1].syns, hs[1].answer_us()),
            (1, Some(0.1), 1, Some(0.5))
        );
    }

    #[test]
    fn a_file_that_is_not_pcap_is_an_error() {
        assert!(handshakes(b"not a capture at all, no").is_err());
        assert!(handshakes(&[0; 10]).is_err());
        let mut truncated = pcap(&[(1, vec![0; 60])]);
        truncated.truncate(truncated.len() - 5);
        assert!(handshakes(&truncated).unwrap_err().contains("past the end"));
    }
}

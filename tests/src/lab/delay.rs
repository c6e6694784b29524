//! The delay link: added latency without `tc netem`, which this kernel
//! lacks. Delayed (region, backend) pairs are policy-routed, in the core
//! namespace, into a TUN device. A reader thread takes each packet off it
//! and stamps its release time (the pair's delay, plus uniform jitter); a
//! writer thread holds it until then and writes it back, and the kernel
//! forwards it on as if it had just arrived on the TUN device.
//!
//! Only the region -> backend direction is held, so a handshake's RTT grows
//! by the delay. Packets of one pair leave in the order they came, even
//! with jitter (no reordering). Its fidelity is checked against captures in
//! the lab tests, not assumed.

// The TUN device is made with ioctl(TUNSETIFF); it has no safe wrapper.
#![allow(unsafe_code)]

use std::collections::{BinaryHeap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The TUN device's name in the core namespace.
pub const DEVICE: &str = "vdelay0";
/// The routing table that sends delayed pairs into the device.
pub const TABLE: &str = "100";

/// A pair's delay: `delay` ± up to `jitter`, uniformly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delay {
    /// Added one-way delay (the RTT grows by as much).
    pub delay: Duration,
    /// Uniform jitter around it; 0 for none.
    pub jitter: Duration,
}

/// How long before a release the writer stops sleeping and spins.
const SPIN: Duration = Duration::from_micros(1_000);

type Pairs = Arc<Mutex<HashMap<(u8, u8), Delay>>>;

/// The running delay link.
#[derive(Debug)]
pub struct DelayLink {
    pairs: Pairs,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// A held packet, ordered by release time (then arrival) for a min-heap.
struct Held {
    release: Instant,
    seq: u64,
    packet: Vec<u8>,
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        (self.release, self.seq) == (o.release, o.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.release, o.seq).cmp(&(self.release, self.seq))
    }
}

impl DelayLink {
    /// Creates the TUN device. Must run on a thread inside the core
    /// namespace (the device is made in the caller's namespace); the
    /// routes are the caller's job.
    pub fn create() -> DelayLink {
        let tun = open_tun(DEVICE);
        let pairs: Pairs = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = {
            let (tun, pairs, stop) = (tun.try_clone().unwrap(), pairs.clone(), stop.clone());
            std::thread::spawn(move || {
                realtime();
                read_loop(tun, &pairs, &stop, tx)
            })
        };
        let writer = std::thread::spawn(move || {
            realtime();
            write_loop(tun, rx)
        });
        DelayLink {
            pairs,
            stop,
            threads: vec![reader, writer],
        }
    }

    /// Sets (or with `None` removes) the delay of a (region, backend) pair.
    pub fn set(&self, region: u8, backend: u8, delay: Option<Delay>) {
        let mut pairs = self.pairs.lock().unwrap();
        match delay {
            Some(d) => pairs.insert((region, backend), d),
            None => pairs.remove(&(region, backend)),
        };
    }
}

impl Drop for DelayLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Puts the calling thread in the real-time FIFO class. A link thread
/// that an ordinary task can preempt releases packets late whenever the
/// machine is busy (a build beside the lab made a 20 ms link 20.2 ms); a
/// FIFO thread runs the moment its packet is due. The kernel's real-time
/// throttling still leaves other tasks their share should one spin.
/// Where the real-time class is refused (a cgroup without real-time
/// runtime), the link still works, and says that its timing will suffer
/// on a busy machine.
fn realtime() {
    let param = libc::sched_param { sched_priority: 50 };
    // SAFETY: pid 0 is the calling thread; `param` outlives the call.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc != 0 {
        eprintln!(
            "lab: the delay link runs without SCHED_FIFO ({}); on a busy machine it releases late",
            std::io::Error::last_os_error()
        );
    }
}

fn open_tun(name: &str) -> File {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .unwrap_or_else(|e| panic!("lab: opening /dev/net/tun: {e}"));
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes the ifreq we own, on an open fd.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
    assert!(
        rc >= 0,
        "lab: TUNSETIFF {name}: {}",
        std::io::Error::last_os_error()
    );
    file
}

/// The (region, backend) pair of an IPv4 packet from 10.10.r.x to 10.20.b.x.
fn pair_of(packet: &[u8]) -> Option<(u8, u8)> {
    if packet.len() < 20 || packet[0] >> 4 != 4 {
        return None;
    }
    let (src, dst) = (&packet[12..16], &packet[16..20]);
    (src[..2] == [10, 10] && dst[..2] == [10, 20]).then_some((src[2], dst[2]))
}

fn read_loop(mut tun: File, pairs: &Pairs, stop: &AtomicBool, tx: Sender<Held>) {
    let mut buf = vec![0u8; 65536];
    let mut last: HashMap<(u8, u8), Instant> = HashMap::new();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut pfd = libc::pollfd {
            fd: tun.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        if unsafe { libc::poll(&mut pfd, 1, 50) } <= 0 {
            continue;
        }
        let Ok(n) = tun.read(&mut buf) else { break };
        let now = Instant::now();
        let packet = buf[..n].to_vec();
        let pair = pair_of(&packet);
        let delay = pair.and_then(|p| pairs.lock().unwrap().get(&p).copied());
        let release = match (pair, delay) {
            (Some(p), Some(d)) => {
                let jitter = d.jitter.as_nanos() as i64;
                let offset = if jitter > 0 {
                    fastrand::i64(-jitter..=jitter)
                } else {
                    0
                };
                let nanos = (d.delay.as_nanos() as i64 + offset).max(0) as u64;
                // One pair's packets leave in the order they came.
                let at = (now + Duration::from_nanos(nanos)).max(*last.get(&p).unwrap_or(&now));
                last.insert(p, at);
                at
            }
            // A pair whose delay was just removed: straight through.
            _ => now,
        };
        seq += 1;
        if tx
            .send(Held {
                release,
                seq,
                packet,
            })
            .is_err()
        {
            break;
        }
    }
}

fn write_loop(mut tun: File, rx: Receiver<Held>) {
    // Wake as close to each release as the kernel can: no timer slack.
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument; it affects this
    // thread only.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    let mut held: BinaryHeap<Held> = BinaryHeap::new();
    loop {
        let now = Instant::now();
        while held.peek().is_some_and(|h| h.release <= now) {
            let h = held.pop().unwrap();
            // A packet the kernel will not take (device going away) is lost,
            // as on a real link.
            let _ = tun.write(&h.packet);
        }
        let wait = held
            .peek()
            .map_or(Duration::from_millis(50), |h| h.release - now);
        // A sleeping thread wakes a few hundred microseconds late on this
        // kind of machine; the last stretch before a release is spun.
        if wait < SPIN {
            match rx.try_recv() {
                Ok(h) => held.push(h),
                Err(std::sync::mpsc::TryRecvError::Empty) => std::hint::spin_loop(),
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
            }
            continue;
        }
        match rx.recv_timeout(wait - SPIN) {
            Ok(h) => held.push(h),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_come_from_the_address_plan() {
        let mut p = vec![0u8; 20];
        p[0] = 0x45;
        p[12..16].copy_from_slice(&[10, 10, 2, 2]);
        p[16..20].copy_from_slice(&[10, 20, 1, 3]);
        assert_eq!(pair_of(&p), Some((2, 1)));
        p[16..20].copy_from_slice(&[10, 10, 1, 3]);
        assert_eq!(pair_of(&p), None);
        p[0] = 0x60;
        assert_eq!(pair_of(&p), None);
        assert_eq!(pair_of(&p[..10]), None);
    }

    #[test]
    fn the_heap_releases_earliest_first() {
        let t = Instant::now();
        let mut h = BinaryHeap::new();
        for (ms, seq) in [(30, 1), (10, 2), (20, 3), (10, 4)] {
            h.push(Held {
                release: t + Duration::from_millis(ms),
                seq,
                packet: Vec::new(),
            });
        }
        let order: Vec<u64> = std::iter::from_fn(|| h.pop().map(|h| h.seq)).collect();
        assert_eq!(order, [2, 4, 3, 1]);
    }
}

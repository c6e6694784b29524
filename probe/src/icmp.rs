//! ICMP answers to a SYN, from the socket's error queue (`IP_RECVERR`).
//!
//! A router that cannot deliver a SYN answers with an ICMP destination
//! unreachable, and the kernel fails the connect at once, unless the ICMP
//! arrives while the probe itself holds the socket (reading its local port,
//! registering it with epoll). Then the kernel only notes a soft error and
//! retransmits the SYN a second later, and the attempt would end as a
//! timeout, or as a one-second "unreachable" with a retransmit that never
//! had a chance. With `IP_RECVERR` the ICMP is also queued on the socket,
//! whoever held it, so the probe reads the answer the path actually gave.
//!
//! The queued error also names who answered (the "offender"): the router
//! that gave up on the SYN, or the target host itself. That is where the
//! path broke, and it goes into the attempt's record.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

/// An ICMP answer to a SYN.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The error the kernel maps it to (EHOSTUNREACH, ENETUNREACH, ...).
    pub error: io::Error,
    /// Who sent the ICMP, when the kernel says.
    pub from: Option<IpAddr>,
}

/// Asks the kernel to queue ICMP errors on the socket.
pub(crate) fn enable(socket: &impl AsRawFd, ipv6: bool) -> io::Result<()> {
    let (level, name) = if ipv6 {
        (libc::IPPROTO_IPV6, libc::IPV6_RECVERR)
    } else {
        (libc::IPPROTO_IP, libc::IP_RECVERR)
    };
    let on: libc::c_int = 1;
    // SAFETY: the pointer and length describe `on`, which outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&on as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The first ICMP (or ICMPv6) answer queued on the socket, if any came;
/// other queued errors are read and skipped. Never blocks.
pub(crate) fn answered(socket: &impl AsRawFd) -> Option<Answer> {
    loop {
        // Room for one extended error plus its offender address, aligned
        // for cmsghdr.
        let mut control = [0u64; 16];
        let mut msg: libc::msghdr = empty_msghdr();
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = mem::size_of_val(&control) as _;
        // SAFETY: `msg` points at `control`, which outlives the call; no
        // iovec is given, so the quoted packet is truncated away.
        let n = unsafe {
            libc::recvmsg(
                socket.as_raw_fd(),
                &mut msg,
                libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            // EAGAIN: the queue is empty.
            return None;
        }
        if let Some(answer) = icmp_answer(&msg) {
            return Some(answer);
        }
    }
}

fn empty_msghdr() -> libc::msghdr {
    // SAFETY: msghdr is plain old data; all-zero (null pointers, zero
    // lengths) is a valid, empty header.
    unsafe { mem::zeroed() }
}

/// The ICMP answer carried by one error-queue message's control data.
fn icmp_answer(msg: &libc::msghdr) -> Option<Answer> {
    // SAFETY: `msg` was filled by recvmsg; the CMSG_* macros walk only
    // within msg_control/msg_controllen, and the extended error and the
    // offender address after it are read unaligned from inside the cmsg's
    // data, bounded by its length.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            let c = &*cmsg;
            let ours = (c.cmsg_level == libc::IPPROTO_IP && c.cmsg_type == libc::IP_RECVERR)
                || (c.cmsg_level == libc::IPPROTO_IPV6 && c.cmsg_type == libc::IPV6_RECVERR);
            if ours {
                let ee: libc::sock_extended_err =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                let icmp = ee.ee_origin == libc::SO_EE_ORIGIN_ICMP
                    || ee.ee_origin == libc::SO_EE_ORIGIN_ICMP6;
                if icmp && ee.ee_errno != 0 {
                    let data = libc::CMSG_DATA(cmsg);
                    let header = data.offset_from(cmsg.cast::<u8>()) as usize;
                    let len = (c.cmsg_len as usize).saturating_sub(header);
                    let offender = std::slice::from_raw_parts(
                        data.add(mem::size_of::<libc::sock_extended_err>()),
                        len.saturating_sub(mem::size_of::<libc::sock_extended_err>()),
                    );
                    return Some(Answer {
                        error: io::Error::from_raw_os_error(ee.ee_errno as i32),
                        from: offender_address(offender),
                    });
                }
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    None
}

/// The `sockaddr_in`/`sockaddr_in6` that follows an extended error
/// (`SO_EE_OFFENDER`), from its bytes; `None` when the kernel left it
/// unset (`AF_UNSPEC`) or it is cut short.
fn offender_address(bytes: &[u8]) -> Option<IpAddr> {
    let family = libc::sa_family_t::from_ne_bytes(bytes.get(..2)?.try_into().ok()?);
    match i32::from(family) {
        libc::AF_INET if bytes.len() >= mem::size_of::<libc::sockaddr_in>() => {
            // sin_family, sin_port, then sin_addr in network order.
            let octets: [u8; 4] = bytes[4..8].try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(octets)))
        }
        libc::AF_INET6 if bytes.len() >= mem::size_of::<libc::sockaddr_in6>() => {
            // sin6_family, sin6_port, sin6_flowinfo, then sin6_addr.
            let octets: [u8; 16] = bytes[8..24].try_into().ok()?;
            let v6 = Ipv6Addr::from(octets);
            // An IPv4 router answering a v4-mapped connect.
            Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_queue_answers_nothing_and_never_blocks() {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        enable(&s, false).unwrap();
        assert!(answered(&s).is_none());
        let s6 = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None);
        if let Ok(s6) = s6 {
            enable(&s6, true).unwrap();
            assert!(answered(&s6).is_none());
        }
    }

    #[test]
    fn a_real_icmp_unreachable_is_read_from_the_queue() {
        // A closed loopback UDP port answers with ICMP port unreachable,
        // which lands on the error queue like a router's answer to a SYN.
        let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = closed.local_addr().unwrap();
        drop(closed);
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        enable(&s, false).unwrap();
        s.send_to(b"x", to).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let answer = loop {
            if let Some(a) = answered(&s) {
                break a;
            }
            assert!(std::time::Instant::now() < deadline, "no ICMP queued");
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert_eq!(answer.error.raw_os_error(), Some(libc::ECONNREFUSED));
        assert_eq!(answer.from, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert!(answered(&s).is_none(), "the queue was drained");
    }

    #[test]
    fn offenders_are_read_for_both_families_and_unset_is_none() {
        let mut v4 = [0u8; mem::size_of::<libc::sockaddr_in>()];
        v4[..2].copy_from_slice(&(libc::AF_INET as libc::sa_family_t).to_ne_bytes());
        v4[4..8].copy_from_slice(&[10, 10, 0, 1]);
        assert_eq!(offender_address(&v4), Some("10.10.0.1".parse().unwrap()));
        assert_eq!(offender_address(&v4[..6]), None, "cut short");

        let mut v6 = [0u8; mem::size_of::<libc::sockaddr_in6>()];
        v6[..2].copy_from_slice(&(libc::AF_INET6 as libc::sa_family_t).to_ne_bytes());
        v6[8..24].copy_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(offender_address(&v6), Some("2001:db8::1".parse().unwrap()));
        v6[8..24].copy_from_slice(&"::ffff:10.0.0.1".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(offender_address(&v6), Some("10.0.0.1".parse().unwrap()));

        assert_eq!(offender_address(&[0u8; 16]), None, "AF_UNSPEC");
        assert_eq!(offender_address(&[]), None);
    }
}

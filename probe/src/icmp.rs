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
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::os::fd::AsRawFd;

/// Asks the kernel to queue ICMP errors on the socket.
pub fn enable(socket: &impl AsRawFd, ipv6: bool) -> io::Result<()> {
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

/// The error of the first ICMP (or ICMPv6) answer queued on the socket, if
/// any came; other queued errors are read and skipped. Never blocks.
pub fn answered(socket: &impl AsRawFd) -> Option<io::Error> {
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
        if let Some(err) = icmp_error(&msg) {
            return Some(err);
        }
    }
}

fn empty_msghdr() -> libc::msghdr {
    // SAFETY: msghdr is plain old data; all-zero (null pointers, zero
    // lengths) is a valid, empty header.
    unsafe { mem::zeroed() }
}

/// The ICMP error carried by one error-queue message's control data.
fn icmp_error(msg: &libc::msghdr) -> Option<io::Error> {
    // SAFETY: `msg` was filled by recvmsg; the CMSG_* macros walk only
    // within msg_control/msg_controllen, and the extended error is read
    // unaligned from inside the control buffer.
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
                    return Some(io::Error::from_raw_os_error(ee.ee_errno as i32));
                }
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    None
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
        let err = loop {
            if let Some(e) = answered(&s) {
                break e;
            }
            assert!(std::time::Instant::now() < deadline, "no ICMP queued");
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED));
        assert!(answered(&s).is_none(), "the queue was drained");
    }
}

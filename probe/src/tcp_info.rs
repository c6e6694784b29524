//! What the kernel knows about a connection: `getsockopt(TCP_INFO)`.
//!
//! The kernel timestamps the SYN when it leaves and the SYN-ACK when it
//! arrives, so `tcpi_rtt` after the handshake is the network's round trip,
//! free of our scheduler's wake-up delay. `tcpi_total_retrans` counts SYNs
//! that had to be sent again.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::os::fd::AsRawFd;

/// The fields of `struct tcp_info` the probe uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpInfo {
    /// `tcpi_state`: the TCP state (1 = established, 2 = SYN sent).
    pub state: u8,
    /// `tcpi_rtt`: smoothed RTT in microseconds; after the handshake, the
    /// SYN -> SYN-ACK sample itself.
    pub rtt_us: u32,
    /// `tcpi_total_retrans`: segments retransmitted over the connection's life.
    pub total_retrans: u32,
    /// `tcpi_retransmits`: retransmissions of the segment now outstanding.
    pub retransmits: u8,
}

/// `TCP_ESTABLISHED` in `tcpi_state`.
#[cfg(test)]
pub(crate) const STATE_ESTABLISHED: u8 = 1;
/// `TCP_SYN_SENT` in `tcpi_state`: the handshake is still under way.
pub(crate) const STATE_SYN_SENT: u8 = 2;
/// `TCP_CLOSE` in `tcpi_state`: the connection failed or was torn down.
pub(crate) const STATE_CLOSE: u8 = 7;

/// Reads `TCP_INFO` from a TCP socket.
pub fn read(socket: &impl AsRawFd) -> io::Result<TcpInfo> {
    // SAFETY: tcp_info is plain old data (integers only); all-zero is valid.
    let mut info: libc::tcp_info = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the pointer and length describe `info`, which outlives the call;
    // the kernel writes at most `len` bytes and updates `len`.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(TcpInfo {
        state: info.tcpi_state,
        rtt_us: info.tcpi_rtt,
        total_retrans: info.tcpi_total_retrans,
        retransmits: info.tcpi_retransmits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_established_loopback_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let info = read(&stream).unwrap();
        assert_eq!(info.state, STATE_ESTABLISHED);
        assert_eq!(info.total_retrans, 0);
        // Loopback: microseconds; never zero (that would mean no sample).
        assert!(info.rtt_us > 0 && info.rtt_us < 200_000, "{info:?}");
    }

    #[test]
    fn fails_on_a_non_tcp_socket() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(read(&udp).is_err());
    }
}

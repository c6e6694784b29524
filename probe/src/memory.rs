//! Handing freed heap back to the kernel after the one-off peaks (parsing a
//! large config), so that a sidecar's resident memory reflects what it
//! keeps, not what it once needed.
#![allow(unsafe_code)]

/// Returns free heap pages to the kernel (glibc `malloc_trim`); a no-op on
/// other C libraries.
pub(crate) fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

//! A report fetched from a collector, as `vantage-collector report
//! --collector URL` reads it, then rendered in every format: whatever a
//! collector answers, the command renders it or says why not.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vantage_collector::fuzz::report(data);
});

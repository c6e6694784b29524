//! A body of `POST /api/v1/results`, as the handler decodes it (identity
//! and gzip, streamed into the JSON parser within the decompressed cap) and
//! then checks it: a batch or a refusal, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vantage_collector::fuzz::batch(data);
});

//! A body of `POST /api/v1/results` in the binary encoding, as the handler
//! decodes it (identity and gzip, within the decompressed and results
//! caps) and then checks it: a batch or a refusal, never a panic; and a
//! batch it reads is written back the same.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vantage_collector::fuzz::binary_batch(data);
});

//! The body of an Alertmanager webhook, as `POST /api/v1/alertmanager`
//! takes it: a payload and its alerts' windows, or a refusal.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vantage_collector::fuzz::alertmanager_webhook(data);
});

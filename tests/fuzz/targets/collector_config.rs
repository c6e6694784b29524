//! The collector's TOML config, as `vantage-collector serve` and `validate`
//! read it: any text either validates or is refused with an error that
//! names the file.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vantage_collector::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/nonexistent/vantage-fuzz/collector.toml");
    if let Err(e) = Config::parse(text, path) {
        let shown = e.to_string();
        assert!(
            shown.contains("collector.toml"),
            "an error that names no file: {shown}"
        );
    }
});

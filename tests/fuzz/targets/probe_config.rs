//! The probe's TOML config, as `vantage-probe run` and `validate` read it:
//! any text either validates or is refused with an error that names the
//! file.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vantage_probe::config::{Config, Overrides};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A directory that does not exist: files the config names are looked
    // for (and not found) the way `run` looks for them.
    let path = Path::new("/nonexistent/vantage-fuzz/probe.toml");
    if let Err(e) = Config::parse(text, path, &Overrides::default()) {
        let shown = e.to_string();
        assert!(
            shown.contains("probe.toml"),
            "an error that names no file: {shown}"
        );
    }
});

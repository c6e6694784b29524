//! The fleet inventory a probe fetches from its collector (file_sd JSON,
//! the format of the probe's own `[[file_sd]]` files), checked as the probe
//! checks a fetched list before it caches it: against a real config file
//! that asks for the inventory.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vantage_probe::config::{Config, Overrides};

const CONFIG: &str = r#"
[probe]
src_region = "us-east-2"
id = "fuzz-1"

[collector]
url = "http://127.0.0.1:9640"
token = "fuzz-token-0123456789"
spool_dir = "spool"
inventory = true

[[targets]]
name = "local"
host = "127.0.0.1"
port = 9
"#;

/// The config, written once per process into a directory of its own.
fn config() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("vantage-fuzz-inventory-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("probe.toml");
        std::fs::write(&path, CONFIG).unwrap();
        let base = Config::load(&path, &Overrides::default());
        assert!(base.is_ok(), "the fuzz target's own config: {base:?}");
        path
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::load_with_inventory(config(), &Overrides::default(), "fetched", text) {
        Ok(c) => assert!(
            c.targets.iter().any(|t| &*t.name == "local"),
            "the probe's own target survives any inventory"
        ),
        Err(e) => {
            let shown = e.to_string();
            assert!(
                shown.contains("fetched") || shown.contains("probe.toml"),
                "{shown}"
            );
        }
    }
});

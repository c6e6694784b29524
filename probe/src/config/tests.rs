//! Config tests as data: every shipped config parses, every invalid fixture
//! under `probe/tests/config/` gives exactly its message.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::span::LineIndex;
use super::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config")
}

/// The error a fixture gives, with the fixture directory left out of paths.
fn error_of(name: &str) -> String {
    let dir = fixtures();
    let err =
        Config::load(&dir.join(name), &Overrides::default()).expect_err("the fixture is invalid");
    err.to_string().replace(&format!("{}/", dir.display()), "")
}

#[test]
fn shipped_examples_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
    // The example names a token file, as a deployment would; give it one.
    let dir = std::env::temp_dir().join(format!("vantage-example-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("tokens")).unwrap();
    for f in ["probe.toml", "targets.json"] {
        std::fs::copy(root.join(f), dir.join(f)).unwrap();
    }
    std::fs::write(
        dir.join("tokens/us-east-2"),
        "0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    let cfg = Config::load(&dir.join("probe.toml"), &Overrides::default()).unwrap();
    let push = cfg.push.as_ref().expect("the example pushes");
    assert_eq!(push.spool_dir, dir.join("spool"));
    assert_eq!(push.token.len(), 32);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(cfg.identity.src_region, "us-east-2");
    assert_eq!(cfg.targets.len(), 6, "3 inline + 3 from targets.json");
    let v6 = cfg
        .targets
        .iter()
        .find(|t| &*t.name == "telemetry-v6")
        .unwrap();
    assert_eq!(v6.host, Host::Ip("2001:db8::10".parse().unwrap()));
    assert_eq!(
        v6.interval,
        Duration::from_secs(30),
        "the file_sd entry's interval"
    );
    assert_eq!(
        v6.labels.get("source").map(String::as_str),
        Some("inventory")
    );
    assert_eq!(
        v6.labels.get("service").map(String::as_str),
        Some("telemetry")
    );
    assert!(
        !v6.labels.contains_key("name"),
        "name is consumed, not a label"
    );
}

#[test]
fn demo_config_validates() {
    let text = crate::demo::CONFIG_TEMPLATE
        .replace("{admin}", "127.0.0.1:9650")
        .replace("{dns}", "127.0.0.1:5353")
        .replace("{web}", "1")
        .replace("{refusing}", "2")
        .replace("{full}", "3");
    let cfg = Config::parse(&text, Path::new("demo.toml"), &Overrides::default()).unwrap();
    assert_eq!(cfg.targets.len(), 7);
}

#[test]
fn defaults_fill_what_is_left_out() {
    let text = "[probe]\nsrc_region = \"r\"\nid = \"p\"\n[[targets]]\nhost = \"db.internal\"\nport = 5432\n";
    let cfg = Config::parse(text, Path::new("p.toml"), &Overrides::default()).unwrap();
    assert_eq!(cfg.admin_listen, default::ADMIN_LISTEN.parse().unwrap());
    assert_eq!(
        cfg.limits.max_connects_per_second,
        default::MAX_CONNECTS_PER_SECOND
    );
    assert_eq!(cfg.dns.servers, None, "system resolv.conf");
    let t = &cfg.targets[0];
    assert_eq!(&*t.name, "db.internal:5432");
    assert_eq!(t.interval, default::INTERVAL);
    assert_eq!(t.connect.timeout, default::TIMEOUT);
    assert_eq!(t.families, Families::BOTH);
}

#[test]
fn overrides_win_over_the_file() {
    let text = "[probe]\nsrc_region = \"from-file\"\nid = \"p\"\n";
    let o = Overrides {
        src_region: Some("from-flag".into()),
        zone: Some("z1".into()),
        probe_id: None,
    };
    let cfg = Config::parse(text, Path::new("p.toml"), &o).unwrap();
    assert_eq!(cfg.identity.src_region, "from-flag");
    assert_eq!(cfg.identity.zone.as_deref(), Some("z1"));
    assert_eq!(cfg.identity.probe_id, "p");
    // An override is validated like the file's value.
    let bad = Overrides {
        src_region: Some("us east".into()),
        ..Overrides::default()
    };
    let err = Config::parse(text, Path::new("p.toml"), &bad).unwrap_err();
    assert_eq!(
        err.to_string(),
        "p.toml: 1 invalid value:\n  p.toml: probe.src_region = \"us east\": \
         must be 1-63 characters of letters, digits, '-', '_' or '.'"
    );
}

#[test]
fn a_probe_id_may_be_as_long_as_a_pod_name_and_a_region_as_a_dns_label() {
    let text =
        "[probe]\nsrc_region = \"r\"\nid = \"p\"\n[[targets]]\nhost = \"127.0.0.1\"\nport = 1\n";
    let with = |src_region: String, probe_id: String| Overrides {
        src_region: Some(src_region),
        zone: None,
        probe_id: Some(probe_id),
    };
    // A Deployment's pod: deployment name, ReplicaSet hash, pod suffix.
    let pod = format!("{}-7d4b9c8f6d-x2k9p", "a".repeat(253 - 17));
    assert_eq!(pod.len(), 253);
    let cfg = Config::parse(text, Path::new("p.toml"), &with("r".into(), pod.clone())).unwrap();
    assert_eq!(cfg.identity.probe_id, pod);
    let err = Config::parse(
        text,
        Path::new("p.toml"),
        &with("r".into(), format!("{pod}x")),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("probe.id = \"aaa")
            && err.to_string().contains("must be 1-253 characters"),
        "{err}"
    );
    let err =
        Config::parse(text, Path::new("p.toml"), &with("r".repeat(64), "p".into())).unwrap_err();
    assert!(err.to_string().contains("must be 1-63 characters"), "{err}");
}

#[test]
fn source_address_pins_the_family() {
    let text = "[probe]\nsrc_region = \"r\"\nid = \"p\"\n[[targets]]\nhost = \"db.internal\"\nport = 1\nsource_address = \"127.0.0.2\"\n";
    let cfg = Config::parse(text, Path::new("p.toml"), &Overrides::default()).unwrap();
    assert_eq!(
        cfg.targets[0].families,
        Families {
            ipv4: true,
            ipv6: false
        }
    );
}

/// (fixture, exact message)
const INVALID: &[(&str, &str)] = &[
    (
        "missing_identity.toml",
        "missing_identity.toml: 2 invalid values:
  missing_identity.toml: probe.src_region: required: a probe is told who and where it is, it never guesses (set it here or with --src-region / VANTAGE_SRC_REGION)
  missing_identity.toml: probe.id: required: a probe is told who and where it is, it never guesses (set it here or with --probe-id / VANTAGE_PROBE_ID)",
    ),
    (
        "unknown_field.toml",
        "unknown_field.toml:8:1: unknown field `tiemout`, expected one of `name`, `host`, `port`, `labels`, `interval`, `timeout`, `families`, `source_address`, `bind_device`",
    ),
    (
        "syntax.toml",
        "syntax.toml:2:24: invalid basic string, expected `\"`",
    ),
    (
        "bad_values.toml",
        "bad_values.toml: 10 invalid values:
  bad_values.toml:2: probe.src_region = \"us east 2\": must be 1-63 characters of letters, digits, '-', '_' or '.'
  bad_values.toml:6: admin.listen = \"localhost:9650\": must be an IP:port like \"0.0.0.0:9650\"
  bad_values.toml:9: limits.max_connects_per_second = 1000000: must be between 1 and 100000
  bad_values.toml:10: limits.max_in_flight = 0: must be between 1 and 16384
  bad_values.toml:13: dns.servers[1] = \"not-an-ip\": must be an IP or IP:port, like \"10.0.0.2\" or \"[::1]:5353\"
  bad_values.toml:14: dns.timeout = \"2 fortnights\": not a duration (unknown time unit \"fortnights\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations)); write it like \"500ms\", \"5s\" or \"1m\"
  bad_values.toml:17: defaults.interval = \"10ms\": must be between 50ms and 1h
  bad_values.toml:18: defaults.families[0] = \"ipv5\": must be \"ipv4\" or \"ipv6\"
  bad_values.toml:22: targets[0].host = \"https://api.example.com\": must be an IP address or a DNS name of letters, digits and inner '-' (no port, no scheme)
  bad_values.toml:23: targets[0].port = 70000: must be 1-65535",
    ),
    (
        "timeout_vs_interval.toml",
        "timeout_vs_interval.toml: 2 invalid values:
  timeout_vs_interval.toml:15: targets[0].timeout = \"5s\": must be shorter than the interval (5s)
  timeout_vs_interval.toml:17: targets[1]: dns.timeout (2s) plus timeout (4s) must fit in the interval (5s)",
    ),
    (
        "duplicate_names.toml",
        "duplicate_names.toml: 1 invalid value:
  duplicate_names.toml:10: targets[1].name = \"db\": a target with this name is already defined (line 5); names must be unique",
    ),
    (
        "bad_labels.toml",
        "bad_labels.toml: 3 invalid values:
  bad_labels.toml:8: targets[0].labels.9lives = \"y\": label names are 1-128 lowercase letters, digits and '_' (snake_case, as Prometheus lints them), not starting with a digit or '__'
  bad_labels.toml:8: targets[0].labels.ok = \"\": must be 1-128 printable characters
  bad_labels.toml:8: targets[0].labels.target = \"x\": 'target' is set by the probe itself; pick another label name",
    ),
    (
        "family_mismatch.toml",
        "family_mismatch.toml: 2 invalid values:
  family_mismatch.toml:6: targets[0].host = \"::1\": its address family is not among the target's families
  family_mismatch.toml:14: targets[1].source_address = \"10.0.0.1\": its family does not match the target's families",
    ),
    (
        "file_sd_missing.toml",
        "file_sd_missing.toml: 1 invalid value:
  file_sd_missing.toml:6: file_sd[0].path = \"does-not-exist.json\": cannot read does-not-exist.json: No such file or directory (os error 2)",
    ),
    (
        "file_sd_bad.toml",
        "file_sd_bad.toml: 2 invalid values:
  bad_targets.json:2: [0].targets[1] = \"no-port\": must be host:port, like \"db.internal:5432\" or \"[2001:db8::1]:443\"
  bad_targets.json:2: [0].targets[2].port = 99999: must be 1-65535",
    ),
    (
        "file_sd_syntax.toml",
        "file_sd_syntax.toml: 1 invalid value:
  syntax_targets.json:3: file_sd[0]: not a file_sd target list: unknown field `lables`, expected `targets` or `labels` at line 3 column 11",
    ),
    (
        "token_device.toml",
        "token_device.toml: 1 invalid value:
  token_device.toml:8: collector.token_file = \"/dev/zero\": /dev/zero is a character device, not a regular file",
    ),
    (
        "spool_kernel.toml",
        "spool_kernel.toml: 1 invalid value:
  spool_kernel.toml:8: collector.spool_dir = \"/proc/spool\": /proc is a kernel filesystem, not a place for the spool",
    ),
    (
        "bad_hosts.toml",
        "bad_hosts.toml: 3 invalid values:
  bad_hosts.toml:7: targets[0].host = \"10.20.0.5.7\": not an IPv4 address (four numbers of 0-255), and not a DNS name (whose last label is never all digits)
  bad_hosts.toml:11: targets[1].host = \"-db.internal\": must be an IP address or a DNS name of letters, digits and inner '-' (no port, no scheme)
  bad_hosts.toml:15: targets[2].host = \"db_1.internal\": must be an IP address or a DNS name of letters, digits and inner '-' (no port, no scheme)",
    ),
    (
        "not_utf8.toml",
        "not_utf8.toml:3: not UTF-8 (an invalid byte at byte offset 40)",
    ),
];

#[test]
fn every_invalid_fixture_gives_its_exact_message() {
    let mut tested = Vec::new();
    for (name, expected) in INVALID {
        assert_eq!(error_of(name), *expected, "fixture {name}");
        tested.push(*name);
    }
    // A new fixture without an expected message is a test that never runs.
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".toml") {
            assert!(
                tested.contains(&name.as_str()),
                "{name} has no expected message"
            );
        }
    }
}

#[test]
fn line_index_maps_offsets_to_lines() {
    let text = "a\nbc\n\nd";
    let idx = LineIndex::new(text);
    let expect = [(1, 1), (1, 2), (2, 1), (2, 2), (2, 3), (3, 1), (4, 1)];
    for (offset, want) in expect.iter().enumerate() {
        assert_eq!(idx.line_col(offset), *want, "offset {offset}");
        assert_eq!(line_col(text, offset), *want);
    }
}

/// A config that takes its targets from the fleet inventory, in a fresh
/// directory with one local target `db` and `inventory.json` as cached.
fn inventory_config(name: &str, cached: Option<&str>) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vantage-inv-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("spool")).unwrap();
    std::fs::write(
        dir.join("probe.toml"),
        r#"[probe]
src_region = "us-east-2"
id = "p1"

[collector]
url = "http://127.0.0.1:9640"
token = "0123456789abcdef0123"
spool_dir = "spool"
inventory = true
inventory_refresh = "5s"

[[targets]]
name = "db"
host = "127.0.0.1"
port = 5432
labels = { owner = "local" }
"#,
    )
    .unwrap();
    if let Some(text) = cached {
        std::fs::write(dir.join("spool/inventory.json"), text).unwrap();
    }
    dir
}

const FLEET: &str = r#"[
  {"targets": ["127.0.0.1:443"], "labels": {"name": "web", "provider": "gcp"}},
  {"targets": ["127.0.0.2:5432"], "labels": {"name": "db", "provider": "gcp"}}
]"#;

#[test]
fn the_cached_inventory_adds_targets_and_local_ones_win() {
    let dir = inventory_config("merge", Some(FLEET));
    let cfg = Config::load(&dir.join("probe.toml"), &Overrides::default()).unwrap();
    assert_eq!(
        cfg.push.as_ref().unwrap().inventory_refresh,
        Some(Duration::from_secs(5))
    );
    let names: Vec<&str> = cfg.targets.iter().map(|t| &*t.name).collect();
    assert_eq!(names, ["db", "web"]);
    assert_eq!(cfg.inventory_targets, 1, "db is overridden locally");
    let db = &cfg.targets[0];
    assert_eq!(db.port, 5432);
    assert_eq!(
        db.host,
        Host::Ip("127.0.0.1".parse().unwrap()),
        "the local db"
    );
    assert_eq!(db.labels.get("owner").map(String::as_str), Some("local"));
    let web = &cfg.targets[1];
    assert_eq!(web.labels.get("provider").map(String::as_str), Some("gcp"));

    // A fetched list is checked in place of the cache.
    let fetched = r#"[{"targets": ["127.0.0.3:80"], "labels": {"name": "api"}}]"#;
    let cfg = Config::load_with_inventory(
        &dir.join("probe.toml"),
        &Overrides::default(),
        "http://127.0.0.1:9640/api/v1/targets?src_region=us-east-2",
        fetched,
    )
    .unwrap();
    let names: Vec<&str> = cfg.targets.iter().map(|t| &*t.name).collect();
    assert_eq!(names, ["api", "db"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_cached_inventory_yet_starts_with_local_targets() {
    let dir = inventory_config("none", None);
    let cfg = Config::load(&dir.join("probe.toml"), &Overrides::default()).unwrap();
    assert_eq!(cfg.targets.len(), 1);
    assert_eq!(cfg.inventory_targets, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_inventory_is_named_with_its_source_and_line() {
    let dir = inventory_config("bad", None);
    let bad = "[\n  {\"targets\": [\"127.0.0.1:443\"]},\n  {\"targets\": [\"127.0.0.1:99999\"]}\n]";
    let err = Config::load_with_inventory(
        &dir.join("probe.toml"),
        &Overrides::default(),
        "http://c/api/v1/targets?src_region=us-east-2",
        bad,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("http://c/api/v1/targets?src_region=us-east-2:3: [1].targets[0].port = 99999"),
        "{err}"
    );
    assert!(err.contains("99999"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inventory_refresh_needs_the_inventory() {
    let text = r#"[probe]
src_region = "r"
id = "p"
[collector]
url = "http://127.0.0.1:9640"
token = "0123456789abcdef0123"
spool_dir = "spool"
inventory_refresh = "5s"
"#;
    let err = Config::parse(text, Path::new("p.toml"), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "p.toml:8: collector.inventory_refresh = \"5s\": only applies with collector.inventory = true"
        ),
        "{err}"
    );
}

#[test]
fn hosts_are_addresses_or_rfc_1123_names() {
    for ok in [
        "10.20.0.5",
        "::1",
        "[2001:db8::1]",
        "db.internal",
        "DB-1.Internal.",
        "1password.com",
        "db.10.internal",
        "localhost",
    ] {
        assert!(parse_host(ok).is_ok(), "{ok}");
    }
    assert_eq!(
        parse_host("DB.Internal"),
        Ok(Host::Name("db.internal".into()))
    );
    for bad in [
        "10.20.0.5.7",
        "10.20.0.256",
        "1.2.3",
        "db.123",
        "",
        ".",
        "db..internal",
        "-db.internal",
        "db-.internal",
        "db_1.internal",
        "db.internal:5432",
        "https://db.internal",
        "db internal",
        &"a".repeat(64),
        &format!("{}.internal", vec!["a".repeat(63); 4].join(".")),
    ] {
        assert!(parse_host(bad).is_err(), "{bad:?}");
    }
}

/// A probe config in a fresh directory, naming `token_file` and, if
/// given, a file_sd list.
fn config_naming(name: &str, token_file: &str, file_sd: Option<&str>) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vantage-names-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), "0123456789abcdef0123\n").unwrap();
    let mut text = format!(
        "[probe]\nsrc_region = \"r\"\nid = \"p\"\n[collector]\nurl = \"http://127.0.0.1:9640\"\n\
         token_file = {token_file:?}\nspool_dir = \"spool\"\n"
    );
    if let Some(f) = file_sd {
        text.push_str(&format!("[[file_sd]]\npath = {f:?}\n"));
    }
    std::fs::write(dir.join("p.toml"), text).unwrap();
    dir
}

fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success());
}

#[test]
fn a_fifo_is_refused_unopened_wherever_the_config_names_it() {
    // Each of these would block a load forever if it were opened for
    // reading: nothing ever writes to the FIFO.
    let dir = config_naming("fifo-token", "fifo", None);
    mkfifo(&dir.join("fifo"));
    let err = Config::load(&dir.join("p.toml"), &Overrides::default()).unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "p.toml:6: collector.token_file = \"fifo\": {} is a FIFO, not a regular file",
            dir.join("fifo").display()
        )),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    let dir = config_naming("fifo-sd", "token", Some("fifo"));
    mkfifo(&dir.join("fifo"));
    let err = Config::load(&dir.join("p.toml"), &Overrides::default()).unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "p.toml:9: file_sd[0].path = \"fifo\": {} is a FIFO, not a regular file",
            dir.join("fifo").display()
        )),
        "{err}"
    );
    // The config itself.
    let err = Config::load(&dir.join("fifo"), &Overrides::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} is a FIFO, not a regular file",
            dir.join("fifo").display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_oversize_config_or_list_is_refused_unparsed() {
    let dir = config_naming("big", "token", Some("big.json"));
    let padding = " ".repeat((32 << 20) + 1);
    std::fs::write(dir.join("big.json"), format!("[]{padding}")).unwrap();
    let err = Config::load(&dir.join("p.toml"), &Overrides::default()).unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "p.toml:9: file_sd[0].path = \"big.json\": {} is larger than 32 MiB, the most a file_sd list may hold",
            dir.join("big.json").display()
        )),
        "{err}"
    );
    let big = dir.join("big.toml");
    std::fs::write(&big, format!("[probe]{padding}")).unwrap();
    let err = Config::load(&big, &Overrides::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} is larger than 32 MiB, the most a config file may hold",
            big.display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

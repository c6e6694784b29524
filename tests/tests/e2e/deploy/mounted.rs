//! Every config in the manifests passes `validate` as its container sees
//! it: the rendered ConfigMaps' files and the operator's Secrets at their
//! mount paths, the environment as the kubelet sets it.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use vantage_tests::Scratch;

use super::kubernetes::{OPERATOR_MADE, OVERLAYS, Rendered, vantage_container};
use super::{root, validate};

/// Lays out what a vantage container of `pod` sees, under `dir`: the
/// rendered ConfigMaps' files and placeholders for what the operator
/// creates, at their mount paths. Returns the container's environment as
/// the kubelet would set it (downward API fields get sample values).
fn lay_out(r: &Rendered, pod: &Value, dir: &Path) -> BTreeMap<String, String> {
    let (c, _) = vantage_container(pod).unwrap();
    let volumes = pod["spec"]["volumes"].as_array().unwrap();
    for m in c["volumeMounts"].as_array().unwrap() {
        let at = dir.join(m["mountPath"].as_str().unwrap().trim_start_matches('/'));
        std::fs::create_dir_all(&at).unwrap();
        let Some(v) = volumes.iter().find(|v| v["name"] == m["name"]) else {
            continue;
        };
        let source = v["configMap"]["name"]
            .as_str()
            .or(v["secret"]["secretName"].as_str());
        let Some(source) = source else { continue };
        if let Some(data) = r.config_map(source) {
            for (k, text) in data.as_object().unwrap() {
                std::fs::write(at.join(k), text.as_str().unwrap()).unwrap();
            }
        } else {
            let (_, keys) = OPERATOR_MADE.iter().find(|(n, _)| *n == source).unwrap();
            for k in *keys {
                match pem(dir, k) {
                    // A certificate or key as the operator makes them:
                    // validate loads the collector's pair.
                    Some(made) => {
                        std::fs::copy(made, at.join(k)).unwrap();
                    }
                    // A token like `openssl rand -hex 32` makes.
                    None => {
                        std::fs::write(at.join(k), format!("{:064x}\n", placeholder(k))).unwrap();
                    }
                }
            }
        }
    }
    let mut env = BTreeMap::new();
    for from in c["envFrom"].as_array().into_iter().flatten() {
        let data = r
            .config_map(from["configMapRef"]["name"].as_str().unwrap())
            .unwrap();
        for (k, v) in data.as_object().unwrap() {
            env.insert(k.clone(), v.as_str().unwrap().to_string());
        }
    }
    for e in c["env"].as_array().into_iter().flatten() {
        let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            Some("metadata.name") => "checkout-7d9f8c6b5-x2k9q".to_string(),
            Some("spec.nodeName") => "ip-10-1-2-3.us-west-1.compute.internal".to_string(),
            Some(f) => panic!("an unexpected downward API field {f}"),
            None => e["value"].as_str().unwrap().to_string(),
        };
        env.insert(e["name"].as_str().unwrap().to_string(), value);
    }
    env
}

/// A real PEM file for a Secret key that holds one (`*.crt`, `*.key`),
/// made once per layout with openssl.
fn pem(dir: &Path, key: &str) -> Option<std::path::PathBuf> {
    let pki = dir.join("pki");
    if !pki.join("server.key").exists() {
        std::fs::create_dir_all(&pki).unwrap();
        vantage_tests::test_certificates(&pki);
    }
    let (ca, cert, private) = (
        pki.join("ca.pem"),
        pki.join("server.pem"),
        pki.join("server.key"),
    );
    match key {
        "ca.crt" => Some(ca),
        k if k.ends_with(".crt") => Some(cert),
        k if k.ends_with(".key") => Some(private),
        _ => None,
    }
}

/// A fixed 128-bit value per name, written as 64 hex digits like `openssl
/// rand -hex 32` makes: distinct per key, and the same in every run.
fn placeholder(name: &str) -> u128 {
    name.bytes().fold(0x9e37_79b9_7f4a_7c15_u128, |h, b| {
        h.wrapping_mul(0x100_0000_01b3).wrapping_add(u128::from(b))
    })
}

/// The `--config` path in a container's args.
fn config_arg(c: &Value) -> String {
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let i = args.iter().position(|a| *a == "--config").unwrap();
    args[i + 1].to_string()
}

#[test]
fn the_configs_in_the_manifests_pass_validate_as_mounted() {
    for r in Rendered::all() {
        for (what, pod) in r.workloads() {
            let Some((c, _)) = vantage_container(pod) else {
                continue;
            };
            let dir = Scratch::new(&format!("mounted-{}", r.overlay));
            let env = lay_out(&r, pod, &dir.path);
            let config = dir.path.join(config_arg(c).trim_start_matches('/'));
            let binary = c["command"][0]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap();
            let out = validate(binary, &config, &env);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{} {what}: {}{}",
                r.overlay,
                stdout,
                String::from_utf8_lossy(&out.stderr)
            );
            let mounts: Vec<&str> = c["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["mountPath"].as_str().unwrap())
                .collect();
            if binary == "vantage-probe" {
                assert!(stdout.contains(&format!(" in {}, ", r.region)), "{stdout}");
                // Nothing guessed: without the overlay's region it refuses.
                let mut no_region = env.clone();
                no_region.remove("VANTAGE_SRC_REGION");
                assert_eq!(
                    validate(binary, &config, &no_region).status.code(),
                    Some(64)
                );

                let overrides = vantage_probe::config::Overrides {
                    src_region: env.get("VANTAGE_SRC_REGION").cloned(),
                    zone: env.get("VANTAGE_ZONE").cloned(),
                    probe_id: env.get("VANTAGE_PROBE_ID").cloned(),
                };
                let cfg = vantage_probe::config::Config::load(&config, &overrides).unwrap();
                let spool = cfg.push.as_ref().unwrap().spool_dir.clone();
                assert!(
                    mounts.iter().any(|m| spool.starts_with(m) && *m != "/"),
                    "{}: the spool {} is on a volume",
                    r.overlay,
                    spool.display()
                );
                let admin = c["ports"][0]["containerPort"].as_u64().unwrap();
                assert_eq!(u64::from(cfg.admin_listen.port()), admin);

                // The fleet inventory the collector serves is one this
                // probe accepts (trailing-dot names and all).
                let fleet = std::fs::read_to_string(
                    root().join("deploy/kubernetes/collector/fleet-targets.json"),
                )
                .unwrap();
                let with = vantage_probe::config::Config::load_with_inventory(
                    &config,
                    &overrides,
                    "fleet-targets.json",
                    &fleet,
                )
                .unwrap();
                assert_eq!(with.inventory_targets, 4, "{}", r.overlay);
            } else {
                let cfg = vantage_collector::config::Config::load(&config).unwrap();
                assert!(
                    mounts.contains(&cfg.data_dir.to_str().unwrap()),
                    "the store is on the claim"
                );
                assert!(cfg.tls.is_some(), "the collector serves TLS");
                let regions: Vec<&str> = cfg.tokens.iter().map(|t| t.src_region.as_str()).collect();
                for (_, region, _) in OVERLAYS {
                    assert!(regions.contains(&region), "a token for {region}");
                }
                // A missing token file is refused with 64.
                std::fs::remove_file(dir.path.join("etc/vantage/tokens/onprem")).unwrap();
                assert_eq!(validate(binary, &config, &env).status.code(), Some(64));
            }
        }
    }
}

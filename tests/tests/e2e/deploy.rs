//! `deploy/`: the Kubernetes overlays render with kustomize and pass the
//! Kubernetes schemas (and prometheus-operator's, for its resources), hold
//! the security and wiring rules, and carry configs that `validate`
//! accepts as mounted; the PrometheusRule and the dashboards' ConfigMaps
//! match `dashboards/`; the systemd units verify and are rated OK or better; the
//! Dockerfile lints, and the static binaries its build line makes run in an
//! empty root and push to a collector by name.
//!
//! The tools come from `deploy/tools/install` (tests/run calls it): the
//! checks use them offline.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use vantage_probe::testbed::Accepting;
use vantage_tests::{Proc, Scratch, bin, free_port, wait_until};

/// Each overlay, its region, and the probe's workload kind in it.
const OVERLAYS: [(&str, &str, &str); 3] = [
    ("us-east-2", "us-east-2", "Deployment"),
    ("us-west-1", "us-west-1", "DaemonSet"),
    ("onprem", "onprem", "Deployment"),
];

/// What an operator creates by hand (deploy/README.md says how), with the
/// keys the pods read. Never generated, so no secret is ever committed.
const OPERATOR_MADE: [(&str, &[&str]); 4] = [
    ("vantage-probe-token", &["token"]),
    ("vantage-ca", &["ca.crt"]),
    (
        "vantage-collector-tokens",
        &["us-east-2", "us-west-1", "onprem"],
    ),
    ("vantage-collector-tls", &["tls.crt", "tls.key"]),
];

/// The Kubernetes versions the manifests must pass: the first with native
/// sidecars on by default, and the newest the validator knows.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.29.0", "1.37.0"];

/// The highest systemd exposure score the units may have ("OK" ends at 4.9).
const EXPOSURE_LIMIT: f64 = 2.0;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// A tool that deploy/tools/install put under the repository.
fn tool(rel: &str) -> PathBuf {
    let p = root().join(rel);
    assert!(
        p.exists(),
        "{} is missing: run deploy/tools/install (tests/run does)",
        p.display()
    );
    p
}

/// Runs `cmd`; its output, whatever the exit status.
fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// Runs `cmd` and insists on success; its stdout.
fn run(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `kubectl kustomize DIR`: the rendered manifests, as YAML.
fn kustomize(dir: &Path) -> String {
    run(Command::new(tool(".tools/bin/kubectl"))
        .arg("kustomize")
        .arg(dir))
}

/// Every document of a YAML stream, as JSON (PyYAML from the tools' venv).
fn yaml_docs(text: &str) -> Vec<Value> {
    let out = vantage_tests::with_stdin(
        Command::new(tool(".tools/venv/bin/python")).args([
            "-c",
            "import json, sys, yaml\n\
             json.dump([d for d in yaml.safe_load_all(sys.stdin) if d is not None], sys.stdout)",
        ]),
        text,
    )
    .unwrap();
    assert!(
        out.status.success(),
        "not YAML: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout).unwrap() {
        Value::Array(docs) => docs,
        v => panic!("not a list of documents: {v}"),
    }
}

/// One overlay, rendered.
struct Rendered {
    overlay: &'static str,
    region: &'static str,
    docs: Vec<Value>,
}

impl Rendered {
    fn of(overlay: &'static str, region: &'static str) -> Rendered {
        let dir = root().join("deploy/kubernetes/overlays").join(overlay);
        Rendered {
            overlay,
            region,
            docs: yaml_docs(&kustomize(&dir)),
        }
    }

    fn all() -> Vec<Rendered> {
        OVERLAYS
            .iter()
            .map(|(o, r, _)| Rendered::of(o, r))
            .collect()
    }

    fn kind(&self, kind: &str) -> Vec<&Value> {
        self.docs.iter().filter(|d| d["kind"] == kind).collect()
    }

    fn one(&self, kind: &str, name: &str) -> &Value {
        self.docs
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{}: no {kind} {name}", self.overlay))
    }

    /// Workloads: (kind/name, pod template).
    fn workloads(&self) -> Vec<(String, &Value)> {
        self.docs
            .iter()
            .filter(|d| {
                matches!(
                    d["kind"].as_str(),
                    Some("Deployment" | "DaemonSet" | "StatefulSet")
                )
            })
            .map(|d| {
                (
                    format!("{}/{}", d["kind"].as_str().unwrap(), name(d)),
                    &d["spec"]["template"],
                )
            })
            .collect()
    }

    /// A ConfigMap's data by the name the pods use (kustomize adds a hash).
    fn config_map(&self, name: &str) -> Option<&Value> {
        self.kind("ConfigMap")
            .into_iter()
            .find(|c| c["metadata"]["name"] == name)
            .map(|c| &c["data"])
    }
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or("")
}

fn containers(pod: &Value) -> Vec<&Value> {
    let spec = &pod["spec"];
    let mut out: Vec<&Value> = spec["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    out.extend(spec["containers"].as_array().into_iter().flatten());
    out
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    let want = selector["matchLabels"].as_object();
    want.is_some_and(|w| !w.is_empty() && w.iter().all(|(k, v)| labels[k] == *v))
}

/// The Kubernetes resources of prometheus-operator, checked against its
/// CRDs' schemas rather than Kubernetes' own.
fn is_crd_kind(doc: &Value) -> bool {
    doc["apiVersion"] == "monitoring.coreos.com/v1"
}

/// Validates `docs` against the Kubernetes schemas (strict: unknown fields
/// are errors) of each version in [`KUBERNETES_VERSIONS`]; the output of
/// the failing run, if any.
fn kubernetes_validate(dir: &Scratch, docs: &[&Value]) -> Result<(), String> {
    let files: Vec<PathBuf> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| dir.write(&format!("k8s-{i}.json"), &d.to_string()))
        .collect();
    for version in KUBERNETES_VERSIONS {
        let out = output(
            Command::new(tool(".tools/venv/bin/kubernetes-validate"))
                .args(["--strict", "-k", version])
                .args(&files),
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let passed = text.matches(" passed for resource ").count();
        if !out.status.success() || passed != files.len() {
            return Err(format!("against {version}:\n{text}"));
        }
    }
    Ok(())
}

/// Validates prometheus-operator resources against its CRDs' schemas.
fn crd_validate(dir: &Scratch, docs: &[&Value]) -> Result<(), String> {
    let files: Vec<PathBuf> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| dir.write(&format!("crd-{i}.json"), &d.to_string()))
        .collect();
    let out = output(
        Command::new("node")
            .arg(tool("deploy/tools/validate-crds.cjs"))
            .args(&files),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() && text.matches("ok ").count() == files.len() {
        Ok(())
    } else {
        Err(text)
    }
}

#[test]
fn every_overlay_renders_and_passes_the_kubernetes_and_crd_schemas() {
    for r in Rendered::all() {
        let dir = Scratch::new(&format!("schemas-{}", r.overlay));
        let (crds, core): (Vec<&Value>, Vec<&Value>) = r.docs.iter().partition(|d| is_crd_kind(d));
        assert!(!core.is_empty() && !crds.is_empty(), "{}", r.overlay);
        if let Err(e) = kubernetes_validate(&dir, &core) {
            panic!("{}: {e}", r.overlay);
        }
        if let Err(e) = crd_validate(&dir, &crds) {
            panic!("{}: {e}", r.overlay);
        }
    }

    // The validators reject what a cluster would: an unknown field in a
    // container, a string where a port number goes, a PodMonitor scheme
    // outside the CRD's enum.
    let r = Rendered::of("us-east-2", "us-east-2");
    let dir = Scratch::new("schemas-bad");
    let mut typo = r.one("Deployment", "vantage-probe").clone();
    typo["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = json!({});
    assert!(kubernetes_validate(&dir, &[&typo]).is_err());
    let mut port = r.one("Service", "vantage-collector").clone();
    port["spec"]["ports"][0]["port"] = json!("https");
    assert!(kubernetes_validate(&dir, &[&port]).is_err());
    let mut scheme = r.one("PodMonitor", "vantage-probe").clone();
    scheme["spec"]["podMetricsEndpoints"][0]["scheme"] = json!("HTTP");
    assert!(crd_validate(&dir, &[&scheme]).is_err());
}

/// Every rule a workload's pod template must hold; the broken ones.
fn pod_problems(what: &str, pod: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let spec = &pod["spec"];
    let psc = &spec["securityContext"];
    if psc["runAsNonRoot"] != true || psc["seccompProfile"]["type"] != "RuntimeDefault" {
        out.push(format!(
            "{what}: pod runs as root or without RuntimeDefault seccomp"
        ));
    }
    if spec["automountServiceAccountToken"] != false {
        out.push(format!(
            "{what}: mounts a service account token it has no use for"
        ));
    }
    for c in containers(pod) {
        let c_what = format!("{what} container {}", c["name"]);
        let sc = &c["securityContext"];
        if sc["allowPrivilegeEscalation"] != false
            || sc["readOnlyRootFilesystem"] != true
            || sc["runAsNonRoot"] != true
            || sc["capabilities"]["drop"] != json!(["ALL"])
            || sc["seccompProfile"]["type"] != "RuntimeDefault"
        {
            out.push(format!("{c_what}: security context is not locked down"));
        }
        let res = &c["resources"];
        if res["requests"]["cpu"].is_null()
            || res["requests"]["memory"].is_null()
            || res["limits"]["memory"].is_null()
        {
            out.push(format!("{c_what}: no cpu/memory requests or memory limit"));
        }
    }
    out
}

/// The vantage container of a pod template and whether it is a sidecar.
fn vantage_container(pod: &Value) -> Option<(&Value, bool)> {
    let spec = &pod["spec"];
    let find = |list: &str| {
        spec[list].as_array().into_iter().flatten().find(|c| {
            c["command"][0]
                .as_str()
                .is_some_and(|s| s.starts_with("/usr/local/bin/vantage-"))
        })
    };
    find("initContainers")
        .map(|c| (c, true))
        .or_else(|| find("containers").map(|c| (c, false)))
}

fn http_probe(c: &Value, which: &str) -> Option<(String, String)> {
    let g = &c[which]["httpGet"];
    Some((g["path"].as_str()?.into(), g["port"].as_str()?.into()))
}

#[test]
fn the_manifests_hold_the_security_and_wiring_rules() {
    for r in Rendered::all() {
        let o = r.overlay;
        // Every container locked down and sized.
        let workloads = r.workloads();
        for (what, pod) in &workloads {
            let problems = pod_problems(&format!("{o} {what}"), pod);
            assert!(problems.is_empty(), "{problems:#?}");
        }

        // The probe: its identity, health checks and form.
        let want_kind = OVERLAYS.iter().find(|x| x.0 == o).unwrap().2;
        let probes: Vec<_> = r
            .docs
            .iter()
            .filter(|d| {
                vantage_container(&d["spec"]["template"])
                    .is_some_and(|(c, _)| c["command"][0] == "/usr/local/bin/vantage-probe")
            })
            .collect();
        assert_eq!(probes.len(), 1, "{o}: one probe workload");
        let probe = probes[0];
        assert_eq!(probe["kind"], want_kind, "{o}");
        let pod = &probe["spec"]["template"];
        let (c, sidecar) = vantage_container(pod).unwrap();
        let env = c["env"].as_array().unwrap();
        let id = env
            .iter()
            .find(|e| e["name"] == "VANTAGE_PROBE_ID")
            .unwrap();
        let field = id["valueFrom"]["fieldRef"]["fieldPath"].as_str().unwrap();
        let want_field = if want_kind == "DaemonSet" {
            "spec.nodeName"
        } else {
            "metadata.name"
        };
        assert_eq!(field, want_field, "{o}: the probe id from the downward API");
        assert!(
            env.iter().all(|e| e["name"] != "VANTAGE_SRC_REGION"),
            "{o}: the region is the overlay's, in the identity ConfigMap"
        );
        let from = c["envFrom"][0]["configMapRef"]["name"].as_str().unwrap();
        let identity = r.config_map(from).unwrap_or_else(|| panic!("{o}: {from}"));
        assert_eq!(identity["VANTAGE_SRC_REGION"], r.region, "{o}");
        assert_eq!(
            http_probe(c, "livenessProbe"),
            Some(("/-/healthy".into(), "vantage-metrics".into())),
            "{o}"
        );
        let port = &c["ports"][0];
        assert_eq!(
            (&port["name"], &port["containerPort"]),
            (&json!("vantage-metrics"), &json!(9650))
        );
        if sidecar {
            // A native sidecar, which must not hold the application back.
            assert_eq!(c["restartPolicy"], "Always", "{o}");
            assert!(
                c["readinessProbe"].is_null() && c["startupProbe"].is_null(),
                "{o}"
            );
            assert!(!pod["spec"]["containers"].as_array().unwrap().is_empty());
        } else {
            assert_eq!(
                http_probe(c, "readinessProbe"),
                Some(("/-/ready".into(), "vantage-metrics".into())),
                "{o}"
            );
        }
        assert_eq!(pod["metadata"]["labels"]["vantage/probe"], "true", "{o}");

        // The PodMonitor finds the probe's pods and port, as job vantage-probe.
        let pm = r.one("PodMonitor", "vantage-probe");
        assert!(
            labels_match(&pm["spec"]["selector"], &pod["metadata"]["labels"]),
            "{o}"
        );
        let ep = &pm["spec"]["podMetricsEndpoints"][0];
        assert_eq!(
            (&ep["port"], &ep["path"]),
            (&json!("vantage-metrics"), &json!("/metrics"))
        );
        assert_eq!(ep["relabelings"][0]["targetLabel"], "job");
        assert_eq!(ep["relabelings"][0]["replacement"], "vantage-probe");

        // Everything a pod mounts or reads is rendered here, or is one of
        // the objects the operator creates (and the README says how).
        let readme = std::fs::read_to_string(root().join("deploy/README.md")).unwrap();
        for (what, pod) in &workloads {
            let mut refs: Vec<&str> = Vec::new();
            for v in pod["spec"]["volumes"].as_array().into_iter().flatten() {
                refs.extend(v["configMap"]["name"].as_str());
                refs.extend(v["secret"]["secretName"].as_str());
            }
            for c in containers(pod) {
                for e in c["envFrom"].as_array().into_iter().flatten() {
                    refs.extend(e["configMapRef"]["name"].as_str());
                }
            }
            for n in refs {
                let made = OPERATOR_MADE.iter().any(|(m, _)| *m == n);
                assert!(
                    r.config_map(n).is_some() || made,
                    "{o} {what}: {n} is neither rendered nor made by the operator"
                );
                assert!(
                    !made || readme.contains(n),
                    "deploy/README.md does not say how to make {n}"
                );
            }
        }
        assert!(r.kind("Secret").is_empty(), "{o}: no Secret is committed");
    }

    // The collector's home: Service, ServiceMonitor, NetworkPolicy, store.
    let r = Rendered::of("us-east-2", "us-east-2");
    let sts = r.one("StatefulSet", "vantage-collector");
    let pod = &sts["spec"]["template"];
    let labels = &pod["metadata"]["labels"];
    let (c, _) = vantage_container(pod).unwrap();
    assert_eq!(sts["spec"]["replicas"], 1, "one writer for the store");
    assert!(
        c["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "https"),
        "the collector's port is named https"
    );
    assert_eq!(http_probe(c, "livenessProbe").unwrap().0, "/-/healthy");
    assert_eq!(http_probe(c, "readinessProbe").unwrap().0, "/-/ready");
    assert_eq!(c["livenessProbe"]["httpGet"]["scheme"], "HTTPS");
    let claim = &sts["spec"]["volumeClaimTemplates"][0];
    let data = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == claim["metadata"]["name"])
        .expect("the claim is mounted");
    assert_eq!(data["mountPath"], "/var/lib/vantage");
    for svc in r.kind("Service") {
        assert_eq!(svc["spec"]["selector"], *labels, "{}", name(svc));
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], "https");
    }
    let sm = r.one("ServiceMonitor", "vantage-collector");
    let svc = r.one("Service", "vantage-collector");
    assert!(labels_match(
        &sm["spec"]["selector"],
        &svc["metadata"]["labels"]
    ));
    let job_label = sm["spec"]["jobLabel"].as_str().unwrap();
    assert_eq!(svc["metadata"]["labels"][job_label], "vantage-collector");
    let ep = &sm["spec"]["endpoints"][0];
    assert_eq!(
        (&ep["port"], &ep["scheme"]),
        (&json!("https"), &json!("https"))
    );
    assert_eq!(ep["tlsConfig"]["ca"]["configMap"]["name"], "vantage-ca");
    let np = r.one("NetworkPolicy", "vantage-collector");
    assert!(labels_match(&np["spec"]["podSelector"], labels));
    let rules = np["spec"]["ingress"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "one rule: probes and Prometheus");
    let peers = rules[0]["from"].as_array().unwrap();
    let probe_labels: Vec<Value> = Rendered::all()
        .iter()
        .flat_map(|r| {
            r.workloads()
                .into_iter()
                .filter(|(_, p)| {
                    vantage_container(p)
                        .is_some_and(|(c, _)| c["command"][0] == "/usr/local/bin/vantage-probe")
                })
                .map(|(_, p)| p["metadata"]["labels"].clone())
                .collect::<Vec<_>>()
        })
        .collect();
    for l in &probe_labels {
        assert!(
            peers
                .iter()
                .any(|p| p["namespaceSelector"] == json!({}) && labels_match(&p["podSelector"], l)),
            "the NetworkPolicy admits probes labelled {l} from any namespace"
        );
    }
    assert!(peers.iter().any(|p| {
        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == "monitoring"
            && p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "prometheus"
    }));
    for p in peers {
        // Anything else is a remote region's egress range, by address.
        let by_label = p["podSelector"].is_object();
        assert!(by_label || p["ipBlock"]["cidr"].is_string(), "{p}");
    }

    // The checks can fail: a container that may escalate is caught.
    let mut bad = pod.clone();
    bad["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = json!(true);
    assert_eq!(pod_problems("bad", &bad).len(), 1);
}

#[test]
fn the_prometheus_rule_is_generated_from_the_rules_and_the_dashboards_are_the_repositorys() {
    let k = root().join("deploy/kubernetes/monitoring");
    let out = Scratch::new("generate");
    run(Command::new(k.join("generate")).arg(&out.path));
    let fresh = std::fs::read_to_string(out.path.join("prometheusrule.yaml")).unwrap();
    let committed = std::fs::read_to_string(k.join("prometheusrule.yaml")).unwrap();
    assert!(
        fresh == committed,
        "deploy/kubernetes/monitoring/prometheusrule.yaml is stale: run deploy/kubernetes/monitoring/generate"
    );

    // Not only the same text: the same groups, as YAML reads them.
    let rules_file =
        std::fs::read_to_string(root().join("dashboards/rules/vantage.rules.yml")).unwrap();
    let groups = yaml_docs(&rules_file)[0]["groups"].clone();
    assert!(groups.as_array().is_some_and(|g| g.len() >= 2));
    let rendered = Rendered::of("us-east-2", "us-east-2");
    let rule = rendered.one("PrometheusRule", "vantage");
    assert_eq!(rule["spec"]["groups"], groups);
    let mut fewer = groups.clone();
    fewer[1]["rules"].as_array_mut().unwrap().pop();
    assert_ne!(
        rule["spec"]["groups"], fewer,
        "a dropped alert would be seen"
    );

    // Every dashboard, as a ConfigMap for Grafana's sidecar, equal to the
    // repository's.
    let mut dashboards = Vec::new();
    for e in std::fs::read_dir(root().join("dashboards")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            dashboards.push(p.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    dashboards.sort();
    assert_eq!(dashboards.len(), 4);
    for d in &dashboards {
        let original = std::fs::read_to_string(root().join("dashboards").join(d)).unwrap();
        let cm = rendered
            .kind("ConfigMap")
            .into_iter()
            .find(|c| c["data"][d].is_string())
            .unwrap_or_else(|| panic!("no ConfigMap carries {d}"));
        assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
        assert_eq!(cm["data"][d], original.as_str());
    }
}

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
                // A token like `openssl rand -hex 32` makes; PEM files are
                // not read by validate, only looked for.
                std::fs::write(at.join(k), format!("{:064x}\n", placeholder(k))).unwrap();
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

/// A fixed 128-bit value per name, written as 64 hex digits like `openssl
/// rand -hex 32` makes: distinct per key, and the same in every run.
fn placeholder(name: &str) -> u128 {
    name.bytes().fold(0x9e37_79b9_7f4a_7c15_u128, |h, b| {
        h.wrapping_mul(0x100_0000_01b3).wrapping_add(u128::from(b))
    })
}

/// `BINARY validate CONFIG` with exactly `env` of vantage's variables.
fn validate(binary: &str, config: &Path, env: &BTreeMap<String, String>) -> Output {
    let mut cmd = Command::new(bin(binary));
    cmd.arg("validate").arg(config);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("VANTAGE_")) {
        cmd.env_remove(k);
    }
    output(cmd.envs(env))
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

/// A unit's `Key=value` lines.
fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

/// The overall exposure `systemd-analyze security --offline=true` gives.
fn exposure(unit: &Path) -> f64 {
    let out = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit));
    let line = out
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure level in:\n{out}"));
    line.split(": ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn the_systemd_units_verify_are_hardened_and_their_configs_validate() {
    let dir = Scratch::new("systemd");
    let readme = std::fs::read_to_string(root().join("deploy/README.md")).unwrap();
    for (binary, unit_name) in [
        ("vantage-probe", "vantage-probe.service"),
        ("vantage-collector", "vantage-collector.service"),
    ] {
        let text = std::fs::read_to_string(root().join("deploy/systemd").join(unit_name)).unwrap();
        // verify wants the executables to exist: the built ones stand in
        // for /usr/local/bin, nothing else changes.
        let installed = format!("/usr/local/bin/{binary}");
        let unit = dir.write(
            unit_name,
            &text.replace(&installed, bin(binary).to_str().unwrap()),
        );
        run(Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&unit));

        let score = exposure(&unit);
        eprintln!("{unit_name}: exposure {score}");
        assert!(
            score <= EXPOSURE_LIMIT,
            "{unit_name}: exposure {score} above {EXPOSURE_LIMIT}"
        );
        assert!(
            readme.contains(&format!("`{unit_name}` | {score:.1}")),
            "deploy/README.md records {unit_name}'s exposure as {score:.1}"
        );

        // The config is validated before every start, the same file.
        let config = format!(
            "/etc/vantage/{}.toml",
            binary.trim_start_matches("vantage-")
        );
        assert_eq!(
            unit_values(&text, "ExecStartPre"),
            [format!("{installed} validate {config}")]
        );
        assert!(unit_values(&text, "ExecStart")[0].ends_with(&format!("--config {config}")));
        let reload = unit_values(&text, "ExecReload");
        if binary == "vantage-probe" {
            assert_eq!(reload, ["/bin/kill -HUP $MAINPID"]);
        } else {
            assert!(
                reload.is_empty(),
                "the collector's tokens are credentials, copied at start: no ExecReload"
            );
        }

        // The host config validates with the unit's credentials laid out
        // as systemd does (a file as ID, a directory's files as ID_FILE)
        // and /etc/vantage as deploy/README.md fills it.
        let etc = dir.path.join(binary).join("etc/vantage");
        let creds = dir.path.join(binary).join("credentials");
        std::fs::create_dir_all(etc.join("tokens")).unwrap();
        std::fs::create_dir_all(etc.join("tls")).unwrap();
        std::fs::create_dir_all(&creds).unwrap();
        if binary == "vantage-probe" {
            std::fs::write(etc.join("tokens/probe"), "a".repeat(64)).unwrap();
            std::fs::write(etc.join("tls/ca.crt"), "").unwrap();
        } else {
            for (i, region) in ["us-east-2", "us-west-1", "onprem"].iter().enumerate() {
                std::fs::write(etc.join("tokens").join(region), format!("{i}").repeat(64)).unwrap();
            }
            std::fs::write(etc.join("tls/collector.key"), "").unwrap();
            std::fs::copy(
                root().join("deploy/examples/fleet-targets.json"),
                etc.join("fleet-targets.json"),
            )
            .unwrap();
        }
        for cred in unit_values(&text, "LoadCredential") {
            let (id, source) = cred.split_once(':').unwrap();
            let source = etc.join(source.strip_prefix("/etc/vantage/").unwrap());
            if source.is_dir() {
                for e in std::fs::read_dir(&source).unwrap() {
                    let e = e.unwrap();
                    std::fs::copy(
                        e.path(),
                        creds.join(format!("{id}_{}", e.file_name().to_string_lossy())),
                    )
                    .unwrap();
                }
            } else {
                std::fs::copy(&source, creds.join(id)).unwrap();
            }
        }
        let host = std::fs::read_to_string(
            root()
                .join("deploy/systemd")
                .join(format!("{}.toml", binary.trim_start_matches("vantage-"))),
        )
        .unwrap();
        let run_dir = format!("/run/credentials/{unit_name}/");
        let host = host
            .replace(&run_dir, &format!("{}/", creds.display()))
            .replace("/etc/vantage/", &format!("{}/", etc.display()));
        let config = dir.write(&format!("{binary}.toml"), &host);
        let mut env = BTreeMap::new();
        for e in unit_values(&text, "Environment") {
            let (k, v) = e.split_once('=').unwrap();
            // %l: the host's short name.
            env.insert(k.to_string(), v.replace("%l", "db-host-7"));
        }
        let out = validate(binary, &config, &env);
        assert!(
            out.status.success(),
            "{unit_name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The state lives in the unit's StateDirectory.
        let state = format!("/var/lib/{}", unit_values(&text, "StateDirectory")[0]);
        assert!(
            host.contains(&format!("\"{state}")),
            "{binary}: state under {state}"
        );
    }

    // The checks can fail: a unit whose binary is missing does not verify,
    // and one without its hardening is rated far above the limit.
    let text =
        std::fs::read_to_string(root().join("deploy/systemd/vantage-probe.service")).unwrap();
    let missing = dir.write("missing.service", &text);
    assert!(
        !output(
            Command::new("systemd-analyze")
                .args(["verify", "--man=no"])
                .arg(&missing)
        )
        .status
        .success()
    );
    let bare: String = text
        .lines()
        .filter(|l| l.starts_with('[') || l.starts_with("Exec") || l.starts_with("Description"))
        .map(|l| {
            l.replace(
                "/usr/local/bin/vantage-probe",
                bin("vantage-probe").to_str().unwrap(),
            ) + "\n"
        })
        .collect();
    let bare = dir.write("bare.service", &bare);
    assert!(exposure(&bare) > 5.0);
}

/// The `cargo build` line of the Dockerfile's build stage, and the paths
/// its final stage copies: (RUSTFLAGS, cargo arguments, copied paths).
fn dockerfile_build() -> (String, Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(root().join("deploy/container/Dockerfile")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("RUN ") && l.contains("cargo build"))
        .expect("a RUN line with cargo build");
    let rest = line.strip_prefix("RUN RUSTFLAGS=\"").unwrap();
    let (flags, cmd) = rest.split_once("\" ").unwrap();
    let args: Vec<String> = cmd.split_whitespace().skip(1).map(String::from).collect();
    let copied = text
        .lines()
        .filter_map(|l| l.strip_prefix("COPY --from=build /src/"))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    (flags.to_string(), args, copied)
}

/// Whether an ELF file needs no loader and no shared library.
fn is_static(path: &Path) -> bool {
    let file = run(Command::new("file").arg("-b").arg(path));
    let header = run(Command::new("readelf")
        .args(["--program-headers", "--dynamic", "--wide"])
        .arg(path));
    (file.contains("statically linked") || file.contains("static-pie linked"))
        && !header.contains("INTERP")
        && !header.contains("(NEEDED)")
}

#[test]
fn the_dockerfile_lints() {
    let hadolint = tool(".tools/venv/bin/hadolint");
    run(Command::new(&hadolint).arg(root().join("deploy/container/Dockerfile")));
    // The linter does reject: a floating base, root, an unpinned install.
    let dir = Scratch::new("hadolint");
    let bad = dir.write(
        "Dockerfile",
        "FROM debian:latest\nRUN apt-get update && apt-get install -y curl\nUSER root\n",
    );
    assert!(!output(Command::new(&hadolint).arg(bad)).status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_container_build_makes_static_binaries_that_push_from_an_empty_root() {
    // The Dockerfile's own build line, run here (Docker is not needed for
    // what it compiles).
    let (flags, args, copied) = dockerfile_build();
    assert_eq!(flags, "-C target-feature=+crt-static");
    assert_eq!(copied.len(), 2, "both binaries");
    // A target directory of its own: the workspace's stays unlocked for
    // the other tests' builds, and `nice` leaves them the CPU first.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root().join("target"), PathBuf::from)
        .join("container");
    let started = std::time::Instant::now();
    run(Command::new("nice")
        .args(["-n", "10"])
        .arg(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .env("RUSTFLAGS", &flags)
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(root())
        .args(&args)
        .arg("--quiet"));
    eprintln!("container build: {:.0?}", started.elapsed());

    let mut built = BTreeMap::new();
    for path in &copied {
        let p = target.join(path.strip_prefix("target/").unwrap());
        assert!(is_static(&p), "{} is not static", p.display());
        let size = std::fs::metadata(&p).unwrap().len();
        eprintln!("{}: {:.1} MiB", p.display(), size as f64 / 1048576.0);
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let version = run(Command::new(&p).arg("--version"));
        assert_eq!(
            version.trim(),
            format!("{name} {}", env!("CARGO_PKG_VERSION"))
        );
        built.insert(name, p);
    }
    // Their validate runs too, on this repository's example configs.
    let examples = Scratch::new("static-validate");
    for f in [
        "probe.toml",
        "targets.json",
        "collector.toml",
        "fleet-targets.json",
    ] {
        let text = std::fs::read_to_string(root().join("deploy/examples").join(f)).unwrap();
        examples.write(f, &text);
    }
    std::fs::create_dir_all(examples.path.join("tokens")).unwrap();
    examples.write("tokens/us-east-2", &"e".repeat(64));
    examples.write("tokens/us-west-1", &"w".repeat(64));
    for name in ["vantage-probe", "vantage-collector"] {
        let config = examples
            .path
            .join(format!("{}.toml", name.trim_start_matches("vantage-")));
        let ok = run(Command::new(&built[name]).arg("validate").arg(&config));
        assert!(ok.contains(": ok: "), "{ok}");
    }
    // The check can fail: the test's own build is dynamically linked.
    assert!(!is_static(&bin("vantage-probe")));

    // The fleet's secrets, made by deploy/README.md's own commands.
    let secrets = Scratch::new("static-secrets");
    run(Command::new("bash")
        .args([
            "-euo",
            "pipefail",
            "-c",
            &readme_block("# The fleet's secrets"),
        ])
        .current_dir(&secrets.path));
    let token = std::fs::read_to_string(secrets.path.join("tokens/onprem")).unwrap();
    assert_eq!(token.trim().len(), 64, "openssl rand -hex 32");

    // The static collector serves TLS with that certificate.
    let col_port = free_port();
    let col_config = secrets.write(
        "collector.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:{col_port}\"\ndata_dir = \"data\"\n\
             tls_cert_file = \"tls/collector.crt\"\ntls_key_file = \"tls/collector.key\"\n\
             [[tokens]]\ntoken_file = \"tokens/us-east-2\"\nsrc_region = \"us-east-2\"\n\
             [[tokens]]\ntoken_file = \"tokens/us-west-1\"\nsrc_region = \"us-west-1\"\n\
             [[tokens]]\ntoken_file = \"tokens/onprem\"\nsrc_region = \"onprem\"\n"
        ),
    );
    let _collector = Proc::spawn(
        Command::new(&built["vantage-collector"])
            .args(["serve", "--config"])
            .arg(&col_config),
    );

    // The static probe runs in an empty root like distroless static's: no
    // shell, no libc, no NSS modules; /etc/hosts, nsswitch.conf and the
    // CA certificates only. It resolves the collector's name there (glibc's
    // built-in files module: loopback) and pushes over TLS, trusting the
    // fleet's CA.
    assert!(
        is_root(),
        "this test chroots into an empty root and needs root (CI runs as root)"
    );
    let jail = Scratch::new("static-root");
    let backend = Accepting::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0))
        .await
        .unwrap();
    for d in ["bin", "etc/ssl/certs", "etc/vantage", "spool"] {
        std::fs::create_dir_all(jail.path.join(d)).unwrap();
    }
    std::fs::copy(&built["vantage-probe"], jail.path.join("bin/vantage-probe")).unwrap();
    std::fs::copy(
        "/etc/ssl/certs/ca-certificates.crt",
        jail.path.join("etc/ssl/certs/ca-certificates.crt"),
    )
    .unwrap();
    std::fs::copy(
        secrets.path.join("tls/ca.crt"),
        jail.path.join("etc/vantage/ca.crt"),
    )
    .unwrap();
    jail.write(
        "etc/hosts",
        "127.0.0.1 localhost collector.vantage.example.com\n",
    );
    jail.write("etc/nsswitch.conf", "hosts: files dns\n");
    jail.write("etc/vantage/token", &token);
    jail.write(
        "etc/vantage/probe.toml",
        &format!(
            "[probe]\nsrc_region = \"onprem\"\nid = \"static-1\"\n[admin]\nlisten = \"127.0.0.1:{}\"\n\
             [collector]\nurl = \"https://collector.vantage.example.com:{col_port}\"\n\
             token_file = \"token\"\nca_file = \"ca.crt\"\nspool_dir = \"/spool\"\nflush_interval = \"200ms\"\n\
             [[targets]]\nname = \"backend\"\nhost = \"127.0.0.1\"\nport = {}\ninterval = \"500ms\"\ntimeout = \"300ms\"\n",
            free_port(),
            backend.addr.port()
        ),
    );
    let probe = Proc::spawn(
        Command::new("chroot")
            .arg(&jail.path)
            .args([
                "/bin/vantage-probe",
                "run",
                "--config",
                "/etc/vantage/probe.toml",
            ])
            .env_clear()
            // Only to find chroot itself; nothing in the root reads it.
            .env("PATH", std::env::var("PATH").unwrap_or_default()),
    );

    // The collector, asked over TLS by the certificate's name, knows it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = std::fs::read(secrets.path.join("tls/ca.crt")).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .resolve(
            "collector.vantage.example.com",
            SocketAddr::from(([127, 0, 0, 1], col_port)),
        )
        .build()
        .unwrap();
    let url = format!("https://collector.vantage.example.com:{col_port}/api/v1/probes");
    wait_until(
        "the static probe's results at the static collector",
        Duration::from_secs(30),
        async || {
            let Ok(r) = client.get(&url).bearer_auth(token.trim()).send().await else {
                return false;
            };
            let body = r.text().await.unwrap_or_default();
            body.contains("\"probe_id\":\"static-1\"") && body.contains("\"state\":\"reporting\"")
        },
    )
    .await;
    probe.signal("TERM");
    let (status, stderr) = probe.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "{stderr}");
}

/// The fenced `sh` block of deploy/README.md whose first line is `first`.
fn readme_block(first: &str) -> String {
    let readme = std::fs::read_to_string(root().join("deploy/README.md")).unwrap();
    let start = readme
        .find(&format!("```sh\n{first}"))
        .unwrap_or_else(|| panic!("deploy/README.md has no block starting {first:?}"));
    let body = &readme[start + "```sh\n".len()..];
    body[..body.find("```").unwrap()].to_string()
}

/// Whether this process runs as root.
fn is_root() -> bool {
    run(Command::new("id").arg("-u")).trim() == "0"
}

//! The Kubernetes overlays render with kustomize and pass the Kubernetes
//! schemas (and prometheus-operator's, for its resources) and hold the
//! security and wiring rules; the PrometheusRule and the dashboards'
//! ConfigMaps are `dashboards/`'s own.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use vantage_tests::Scratch;

use super::{output, root, run, tool};

/// Each overlay, its region, and the probe's workload kind in it.
pub(super) const OVERLAYS: [(&str, &str, &str); 3] = [
    ("us-east-2", "us-east-2", "Deployment"),
    ("us-west-1", "us-west-1", "DaemonSet"),
    ("onprem", "onprem", "Deployment"),
];

/// What an operator creates by hand (deploy/README.md says how), with the
/// keys the pods read. Never generated, so no secret is ever committed.
pub(super) const OPERATOR_MADE: [(&str, &[&str]); 4] = [
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
pub(super) struct Rendered {
    pub(super) overlay: &'static str,
    pub(super) region: &'static str,
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

    pub(super) fn all() -> Vec<Rendered> {
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
    pub(super) fn workloads(&self) -> Vec<(String, &Value)> {
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
    pub(super) fn config_map(&self, name: &str) -> Option<&Value> {
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
pub(super) fn vantage_container(pod: &Value) -> Option<(&Value, bool)> {
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
    // Loading the evidence's cells before it serves takes tens of seconds
    // for a big fleet: liveness must not kill it meanwhile.
    assert_eq!(http_probe(c, "startupProbe").unwrap().0, "/-/healthy");
    let startup = &c["startupProbe"];
    let patience = startup["periodSeconds"].as_u64().unwrap_or(10)
        * startup["failureThreshold"].as_u64().unwrap_or(3);
    assert!(patience >= 120, "a startup probe that waits {patience} s");
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

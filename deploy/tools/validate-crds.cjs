// Validates prometheus-operator resources (PodMonitor, ServiceMonitor,
// PrometheusRule) against the schemas of their CRDs, as shipped in
// @kubernetes-models/prometheus-operator: types, enums, required fields.
// Like the API server's own check of a CRD's schema, it does not reject
// unknown fields; the deploy tests check the fields vantage relies on.
//
//   node deploy/tools/validate-crds.cjs FILE.json...
//
// Each FILE holds one resource as JSON. Prints "ok KIND/NAME" per valid
// resource and every error otherwise; exits 1 if any resource is invalid
// or of a kind it has no schema for.
"use strict";

const fs = require("fs");
const path = require("path");

const models = path.join(__dirname, "node_modules/@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1");
const kinds = {
  PodMonitor: require(path.join(models, "PodMonitor")).PodMonitor,
  ServiceMonitor: require(path.join(models, "ServiceMonitor")).ServiceMonitor,
  PrometheusRule: require(path.join(models, "PrometheusRule")).PrometheusRule,
};

let failed = false;
for (const file of process.argv.slice(2)) {
  const doc = JSON.parse(fs.readFileSync(file, "utf8"));
  const what = `${doc.kind}/${doc.metadata && doc.metadata.name}`;
  const Model = kinds[doc.kind];
  if (doc.apiVersion !== "monitoring.coreos.com/v1" || !Model) {
    console.log(`${file}: ${what}: no schema for ${doc.apiVersion} ${doc.kind}`);
    failed = true;
    continue;
  }
  try {
    new Model(doc).validate();
    console.log(`ok ${what}`);
  } catch (e) {
    console.log(`${file}: ${what}: ${e.message}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);

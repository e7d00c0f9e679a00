// Validates docker/k8s/*.yaml against the Kubernetes OpenAPI schemas (npm kubernetes-models,
// which validates with the official JSON schemas; no cluster needed), then checks the facts the
// deployment relies on. A deliberately broken copy must fail, so the validator is known to bite.
// usage: node validate_k8s.mjs K8S_DIR
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { Deployment } from "kubernetes-models/apps/v1";
import { Service } from "kubernetes-models/v1";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2";

const KINDS = { Deployment, Service, HorizontalPodAutoscaler };
let passed = 0, failed = 0;
function check(what, cond) {
  if (cond) passed++;
  else { failed++; console.log(`FAIL ${what}`); }
}
function validates(obj) {
  const K = KINDS[obj.kind];
  if (!K) return `unknown kind ${obj.kind}`;
  try { new K(obj).validate(); return null; } catch (e) { return String(e.message || e).slice(0, 300); }
}

const dir = process.argv[2];
const objs = {};
for (const f of readdirSync(dir).filter((f) => f.endsWith(".yaml"))) {
  for (const doc of YAML.parseAllDocuments(readFileSync(join(dir, f), "utf8"))) {
    const obj = doc.toJS();
    const err = validates(obj);
    check(`${f}: ${obj.kind} is valid (${err})`, err === null);
    objs[obj.kind] = obj;
  }
}
const dep = objs.Deployment, svc = objs.Service, hpa = objs.HorizontalPodAutoscaler;
const pod = dep.spec.template.spec, c = pod.containers[0];
const env = Object.fromEntries((c.env || []).map((e) => [e.name, e.value]));
const preStopSleep = Number((c.lifecycle?.preStop?.exec?.command?.join(" ").match(/sleep (\d+)/) || [0, 0])[1]);
check("startupProbe on /health", c.startupProbe?.httpGet?.path === "/health");
check("readinessProbe on /health", c.readinessProbe?.httpGet?.path === "/health");
check("livenessProbe on /health", c.livenessProbe?.httpGet?.path === "/health");
check("startup probe allows at least 10 minutes to load",
  c.startupProbe.periodSeconds * c.startupProbe.failureThreshold >= 600);
check("grace period > shutdown timeout + preStop",
  pod.terminationGracePeriodSeconds > Number(env.MOESERVE_SHUTDOWN_TIMEOUT) + preStopSleep);
check("preStop delay present", preStopSleep > 0);
check("model mounted read-only", c.volumeMounts.some((m) => m.mountPath === env.MOESERVE_MODEL && m.readOnly));
check("memory request set", Boolean(c.resources?.requests?.memory));
check("runs as non-root", pod.securityContext?.runAsNonRoot === true);
check("service selects the pods", Object.entries(svc.spec.selector).every(([k, v]) => dep.spec.template.metadata.labels[k] === v));
check("service targets the container port", svc.spec.ports[0].targetPort === c.ports[0].name);
check("HPA scales the deployment", hpa.spec.scaleTargetRef.kind === "Deployment" && hpa.spec.scaleTargetRef.name === dep.metadata.name);
check("HPA uses the queue-depth metric", hpa.spec.metrics[0].pods.metric.name.includes("num_requests_waiting"));

// the validator must reject broken manifests
const broken = structuredClone(dep);
broken.spec.replicas = "two";
check("schema rejects replicas: \"two\"", validates(broken) !== null);
const broken2 = structuredClone(dep);
delete broken2.spec.selector;
check("schema rejects a Deployment without selector", validates(broken2) !== null);

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

/**
 * The Kubernetes stack fits together: probes on the health routes, a grace
 * period that covers preStop and the drain, named ports that the Service,
 * ServiceMonitor and probes refer to, selectors that match the pods, and an
 * autoscaler on the Deployment with a metric the adapter serves.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse } from 'yaml';
import { manifestOf, readDeployFile } from './deploy-files.ts';

type Json = Record<string, unknown>;

interface Port { name?: string; containerPort: number }
interface Probe { httpGet?: { path: string; port: string | number }; periodSeconds?: number; failureThreshold?: number }
interface Container {
  name: string;
  image: string;
  args?: string[];
  command?: string[];
  ports?: Port[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command: string[] }; sleep?: { seconds: number } } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
  securityContext?: Json;
}
interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  terminationGracePeriodSeconds?: number;
  volumes?: { name: string }[];
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
}

const deployment = manifestOf('Deployment', 'switchyard').object as {
  metadata: { name: string };
  spec: { replicas: number; selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string>; annotations?: Record<string, string> }; spec: PodSpec } };
};
const pod = deployment.spec.template.spec;
const podLabels = deployment.spec.template.metadata.labels;
const server = pod.containers.find((c) => c.name === 'switchyard')!;

/** The value of --<flag>=<value> (or --<flag> <value>) in a container's args. */
function flag(args: readonly string[], name: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg.startsWith(`--${name}=`)) return arg.slice(name.length + 3);
    if (arg === `--${name}`) return args[i + 1];
  }
  return undefined;
}

function portNumber(container: Container, port: string | number): number {
  if (typeof port === 'number') return port;
  const found = container.ports?.find((p) => p.name === port);
  assert.ok(found, `no container port named ${port}`);
  return found.containerPort;
}

function matches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);
}

test('the Deployment runs three replicas of the server container', () => {
  assert.equal(deployment.spec.replicas, 3);
  assert.ok(server, 'a container named switchyard');
  assert.ok(matches(deployment.spec.selector.matchLabels, podLabels), 'the Deployment selects its own pods');
});

test('every container port is named, and the server has http 8000, grpc 8001 and metrics 8002 matching its flags', () => {
  for (const container of [...pod.containers, ...(pod.initContainers ?? [])]) {
    for (const port of container.ports ?? []) assert.match(port.name ?? '', /^[a-z0-9-]{1,15}$/, `${container.name} port ${port.containerPort} needs a name`);
  }
  const ports = Object.fromEntries((server.ports ?? []).map((p) => [p.name, p.containerPort]));
  assert.deepEqual(ports, { http: 8000, grpc: 8001, metrics: 8002 });
  const args = server.args ?? [];
  assert.equal(Number(flag(args, 'http-port')), ports['http']);
  assert.equal(Number(flag(args, 'grpc-port')), ports['grpc']);
  assert.equal(Number(flag(args, 'metrics-port')), ports['metrics']);
});

test('probes: liveness on /v2/health/live and readiness on /v2/health/ready, both on the HTTP port', () => {
  const httpPort = Number(flag(server.args ?? [], 'http-port') ?? 8000);
  const liveness = server.livenessProbe?.httpGet;
  const readiness = server.readinessProbe?.httpGet;
  assert.equal(liveness?.path, '/v2/health/live');
  assert.equal(readiness?.path, '/v2/health/ready');
  assert.equal(portNumber(server, liveness.port), httpPort);
  assert.equal(portNumber(server, readiness.port), httpPort);
});

test('a startup probe gives slow model loads minutes before liveness can restart the pod', () => {
  const startup = server.startupProbe;
  assert.ok(startup?.httpGet, 'startupProbe with httpGet');
  assert.match(startup.httpGet.path, /^\/v2\/health\/(live|ready)$/);
  assert.equal(portNumber(server, startup.httpGet.port), 8000);
  const budget = (startup.periodSeconds ?? 10) * (startup.failureThreshold ?? 3);
  assert.ok(budget >= 120, `startup allows only ${budget}s`);
});

test('termination: preStop sleep, then the drain of --exit-timeout-secs, fit inside terminationGracePeriodSeconds', () => {
  const exitTimeout = Number(flag(server.args ?? [], 'exit-timeout-secs'));
  assert.ok(Number.isInteger(exitTimeout) && exitTimeout > 0, '--exit-timeout-secs is given');
  const preStop = server.lifecycle?.preStop;
  const command = preStop?.exec?.command;
  const sleep = preStop?.sleep?.seconds ?? (command?.[0] === 'sleep' ? Number(command[1]) : NaN);
  assert.ok(sleep >= 5, `preStop sleeps ${sleep}s; endpoints need a few seconds to drop the pod`);
  const grace = pod.terminationGracePeriodSeconds ?? 30;
  assert.ok(grace > exitTimeout, `grace ${grace}s must exceed --exit-timeout-secs=${exitTimeout}`);
  assert.ok(grace > sleep + exitTimeout, `grace ${grace}s must exceed preStop ${sleep}s + drain ${exitTimeout}s`);
});

test('every container has CPU and memory requests and a memory limit', () => {
  for (const container of [...pod.containers, ...(pod.initContainers ?? [])]) {
    assert.ok(container.resources?.requests?.['cpu'], `${container.name}: cpu request`);
    assert.ok(container.resources?.requests?.['memory'], `${container.name}: memory request`);
    assert.ok(container.resources?.limits?.['memory'], `${container.name}: memory limit`);
  }
});

test('the model repository comes from a pod volume that the init container fills', () => {
  const repository = flag(server.args ?? [], 'model-repository');
  const mount = server.volumeMounts?.find((m) => m.mountPath === repository);
  assert.ok(mount, `--model-repository=${repository} is a volume mount`);
  assert.equal(mount.readOnly, true, 'the server reads the repository read-only');
  assert.ok(pod.volumes?.some((v) => v.name === mount.name), `volume ${mount.name} is declared`);
  const filler = (pod.initContainers ?? []).find((c) => c.volumeMounts?.some((m) => m.name === mount.name && !m.readOnly));
  assert.ok(filler, 'an init container writes the model volume');
});

test('the pod runs as the image\'s non-root user', () => {
  assert.equal(pod.securityContext?.runAsNonRoot, true);
  const dockerfileUser = /^USER\s+(\d+)/m.exec(readDeployFile('Dockerfile'))?.[1];
  assert.equal(String(pod.securityContext?.runAsUser), dockerfileUser);
});

test('Prometheus scrape annotations point at the metrics port and /metrics', () => {
  const annotations = deployment.spec.template.metadata.annotations ?? {};
  assert.equal(annotations['prometheus.io/scrape'], 'true');
  assert.equal(Number(annotations['prometheus.io/port']), portNumber(server, 'metrics'));
  assert.equal(annotations['prometheus.io/path'], '/metrics');
});

test('the Service selects the Deployment\'s pods and exposes http, grpc (appProtocol grpc) and metrics', () => {
  const service = manifestOf('Service', 'switchyard').object as { spec: { selector: Record<string, string>; ports: { name: string; port: number; targetPort: string | number; appProtocol?: string }[] } };
  assert.ok(matches(service.spec.selector, podLabels), 'Service selector matches the pod labels');
  const byName = Object.fromEntries(service.spec.ports.map((p) => [p.name, p]));
  assert.deepEqual(Object.keys(byName).sort(), ['grpc', 'http', 'metrics']);
  assert.equal(byName['grpc']!.appProtocol, 'grpc');
  for (const port of service.spec.ports) {
    assert.equal(portNumber(server, port.targetPort), port.port, `Service port ${port.name} targets the container port of the same number`);
  }
});

test('the PodDisruptionBudget covers the Deployment\'s pods', () => {
  const pdb = manifestOf('PodDisruptionBudget', 'switchyard').object as { spec: { selector: { matchLabels: Record<string, string> }; maxUnavailable?: number } };
  assert.ok(matches(pdb.spec.selector.matchLabels, podLabels));
  assert.ok((pdb.spec.maxUnavailable ?? 0) < deployment.spec.replicas);
});

test('the HPA scales the Deployment on a Pods metric that the prometheus-adapter rules define', () => {
  const hpa = manifestOf('HorizontalPodAutoscaler', 'switchyard').object as {
    spec: {
      scaleTargetRef: { apiVersion: string; kind: string; name: string };
      minReplicas: number; maxReplicas: number;
      metrics: { type: string; pods?: { metric: { name: string }; target: { type: string; averageValue?: string } } }[];
      behavior?: { scaleDown?: { stabilizationWindowSeconds?: number } };
    };
  };
  assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name });
  assert.ok(hpa.spec.minReplicas <= deployment.spec.replicas && deployment.spec.replicas <= hpa.spec.maxReplicas);
  const pods = hpa.spec.metrics.filter((m) => m.type === 'Pods');
  assert.ok(pods.length >= 1, 'a Pods metric');
  const rules = parse(readDeployFile('kubernetes/prometheus-adapter-rules.yaml')) as { rules: { custom: { name: { as: string } }[] } };
  const served = rules.rules.custom.map((r) => r.name.as);
  for (const metric of pods) {
    assert.ok(served.includes(metric.pods!.metric.name), `${metric.pods!.metric.name} is not served by prometheus-adapter-rules.yaml (${served.join(', ')})`);
    assert.equal(metric.pods!.target.type, 'AverageValue');
  }
  // Scaling down ends the sequences on the removed pod: it must be slow.
  assert.ok((hpa.spec.behavior?.scaleDown?.stabilizationWindowSeconds ?? 300) >= 300);
});

test('the ServiceMonitor selects the Service and scrapes its metrics port', () => {
  const monitor = manifestOf('ServiceMonitor', 'switchyard').object as { spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string; path?: string }[] } };
  const service = manifestOf('Service', 'switchyard').object as { metadata: { labels: Record<string, string> }; spec: { ports: { name: string }[] } };
  assert.ok(matches(monitor.spec.selector.matchLabels, service.metadata.labels));
  assert.deepEqual(monitor.spec.endpoints.map((e) => [e.port, e.path]), [['metrics', '/metrics']]);
  assert.ok(service.spec.ports.some((p) => p.name === 'metrics'));
});

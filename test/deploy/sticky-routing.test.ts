/**
 * Sequence stickiness: the Istio DestinationRule and the ingress-nginx
 * Ingresses hash on the same client header, over HTTP and gRPC, onto the
 * Switchyard Service; and docs/deploy.md tells clients how to set it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { deployManifests, manifestOf, REPO_ROOT } from './deploy-files.ts';

const HEADER = 'x-sequence-id';

interface Backend { service: { name: string; port: { name?: string; number?: number } } }
interface Ingress {
  metadata: { name: string; annotations?: Record<string, string> };
  spec: { ingressClassName?: string; tls?: { hosts: string[]; secretName: string }[]; rules: { host: string; http: { paths: { backend: Backend }[] } }[] };
}

const service = manifestOf('Service', 'switchyard').object as { metadata: { name: string }; spec: { ports: { name: string; port: number }[] } };
const ingresses = deployManifests().filter((d) => d.object['kind'] === 'Ingress').map((d) => d.object as unknown as Ingress);

function backendPortName(backend: Backend): string | undefined {
  const { name, number } = backend.service.port;
  return name ?? service.spec.ports.find((p) => p.port === number)?.name;
}

test('Istio: consistent hashing on the x-sequence-id header, for the Switchyard Service', () => {
  const rule = manifestOf('DestinationRule').object as { spec: { host: string; trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: string } } } } };
  const host = rule.spec.host;
  assert.ok(host === service.metadata.name || host.startsWith(`${service.metadata.name}.`), `host ${host} is the Service`);
  assert.equal(rule.spec.trafficPolicy.loadBalancer.consistentHash.httpHeaderName, HEADER);
});

test('ingress-nginx: every Ingress hashes on the same header, for HTTP and for gRPC', () => {
  assert.ok(ingresses.length >= 2);
  const nginxVariable = `$http_${HEADER.replace(/-/g, '_')}`;
  const protocols = new Set<string>();
  for (const ingress of ingresses) {
    const annotations = ingress.metadata.annotations ?? {};
    assert.equal(annotations['nginx.ingress.kubernetes.io/upstream-hash-by'], nginxVariable, `${ingress.metadata.name}: upstream-hash-by`);
    assert.equal(ingress.spec.ingressClassName, 'nginx');
    const grpc = annotations['nginx.ingress.kubernetes.io/backend-protocol'] === 'GRPC';
    for (const rule of ingress.spec.rules) {
      for (const { backend } of rule.http.paths) {
        assert.equal(backend.service.name, service.metadata.name, `${ingress.metadata.name}: backend is the Switchyard Service`);
        const port = backendPortName(backend);
        assert.equal(port, grpc ? 'grpc' : 'http', `${ingress.metadata.name}: ${grpc ? 'gRPC' : 'HTTP'} goes to the Service's ${grpc ? 'grpc' : 'http'} port`);
        protocols.add(port!);
      }
    }
    if (grpc) {
      const hosts = ingress.spec.rules.map((r) => r.host);
      assert.ok(ingress.spec.tls?.some((t) => hosts.every((h) => t.hosts.includes(h))), `${ingress.metadata.name}: gRPC through ingress-nginx needs TLS on its hosts`);
    }
  }
  assert.deepEqual([...protocols].sort(), ['grpc', 'http']);
});

test('docs/deploy.md explains sticky sequences: the header, tritonclient\'s headers=, and scale-down', () => {
  const docs = readFileSync(join(REPO_ROOT, 'docs/deploy.md'), 'utf8');
  assert.ok(docs.includes(HEADER));
  assert.match(docs, /headers=/);
  assert.match(docs, /parameters\.sequence_id|sequence_id/);
  assert.match(docs, /START/);
  assert.match(docs, /upstream-hash-by/);
  assert.match(docs, /httpHeaderName/);
});

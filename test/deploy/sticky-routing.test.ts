/**
 * Sequence stickiness: the Istio DestinationRule and the ingress-nginx
 * Ingresses hash on the same client header, over HTTP and gRPC, onto the
 * Switchyard Service; and docs/deploy.md shows those same settings, hosts and
 * header, and the server's own error for a sequence that lost its replica.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { serverError } from '../../engine/errors.ts';
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

/** docs/deploy.md's section on sticky routing, up to the next section of the same level. */
function stickySection(): string {
  const docs = readFileSync(join(REPO_ROOT, 'docs/deploy.md'), 'utf8');
  const from = docs.indexOf('\n## Sticky routing for sequences\n');
  assert.ok(from >= 0, "docs/deploy.md has a '## Sticky routing for sequences' section");
  const to = docs.indexOf('\n## ', from + 1);
  return docs.slice(from, to < 0 ? undefined : to);
}

/** The YAML blocks of a Markdown text, parsed. */
function yamlBlocks(markdown: string): unknown[] {
  return [...markdown.matchAll(/^```yaml\n([\s\S]*?)^```$/gm)].map((m) => parse(m[1]!) as unknown);
}

test('docs/deploy.md shows the DestinationRule\'s own load-balancer settings', () => {
  const rule = manifestOf('DestinationRule').object as { spec: { trafficPolicy: unknown } };
  const shown = yamlBlocks(stickySection()).filter((b): b is { trafficPolicy: unknown } => typeof b === 'object' && b !== null && 'trafficPolicy' in b);
  assert.equal(shown.length, 1, 'one trafficPolicy block');
  assert.deepEqual(shown[0]!.trafficPolicy, rule.spec.trafficPolicy);
});

test('docs/deploy.md shows the Ingresses\' own hash annotation, hosts and ports', () => {
  const section = stickySection();
  const annotation = 'nginx.ingress.kubernetes.io/upstream-hash-by';
  const shown = yamlBlocks(section).filter((b): b is Record<string, string> => typeof b === 'object' && b !== null && annotation in b);
  assert.equal(shown.length, 1, `one block with ${annotation}`);
  for (const ingress of ingresses) assert.equal(shown[0]![annotation], ingress.metadata.annotations?.[annotation], ingress.metadata.name);
  // "`<host>` → port `<name>`": the same hosts as the Ingress rules, each to the same Service port.
  const documented = Object.fromEntries([...section.matchAll(/`([a-z0-9.-]+)` → port `([a-z]+)`/g)].map((m) => [m[1]!, m[2]!]));
  const deployed = Object.fromEntries(ingresses.flatMap((i) => i.spec.rules.flatMap((r) => r.http.paths.map((p) => [r.host, backendPortName(p.backend)!]))));
  assert.deepEqual(documented, deployed);
});

test('docs/deploy.md\'s client examples set the header the balancers hash, and quote the server\'s error for a lost sequence', () => {
  const section = stickySection();
  const headers = [...section.matchAll(/headers=\{"([^"]+)"|headers: \{ '([^']+)'/g)].map((m) => m[1] ?? m[2]);
  assert.ok(headers.length >= 4, `examples for tritonclient HTTP, gRPC, gRPC streams and the TypeScript client: ${headers.length} found`);
  assert.deepEqual(new Set(headers), new Set([HEADER]));
  const lost = serverError('SEQUENCE_NOT_STARTED', { model: 'm', sequence: '42' });
  assert.equal(lost.status, 'INVALID_ARG');
  assert.ok(section.replace(/\s+/g, ' ').includes(lost.message), `the docs quote: ${lost.message}`);
});

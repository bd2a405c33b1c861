// Hive Gateway (@graphql-hive/gateway's runtime on node:http, one process, no forks) with Hive's own defaults
// and nothing of ours but what these subgraphs demand to answer at all: a signed identity on each subgraph
// request, for a fixed admin viewer. The counterpart of apollo.ts. A bench process, configured by its arguments:
//   node infra/bench/dist/gateways/hive.js --port P --supergraph FILE --users URL --users-secret S --orders URL
//     --orders-secret S [--dedupe on|off] [--runtime stitching|router]
// --dedupe off turns off the one deduplication Hive does by default: identical in-flight query requests to a
// subgraph share one HTTP request (@graphql-tools/executor-http's `deduplicateInflightRequests`, default true,
// passed through by the HTTP transport's `options`). Hive's dedupe of identical incoming client requests
// (`inboundInflightRequestDeduplication`) and its response cache (`responseCaching`) are off by default and
// stay off. --runtime router plans with Hive Router's Rust query planner and executes with its JavaScript
// executor (@graphql-hive/router-runtime's `unifiedGraphHandler`, what `hive-gateway --hive-router-runtime` and
// HIVE_ROUTER_RUNTIME=true load); the default, stitching, is Hive Gateway's own JavaScript planner and executor.
// Subgraph requests go through the same HTTP transport either way, so --dedupe and the signing hook apply to both.
// Logs go to stderr (LOG_LEVEL as Hive reads it), so stdout carries only the `ready` line.
import { createServer } from 'node:http';
import { Console } from 'node:console';
import { parseArgs } from 'node:util';
import { ConsoleLogWriter, createGatewayRuntime, Logger, type GatewayPlugin, type HTTPTransportOptions } from '@graphql-hive/gateway';
import { IDENTITY_HEADER, signIdentity } from '@fed/platform';
import { ADMIN, REFERENCE_OPTIONS, referenceSettings } from './reference.ts';

const { values } = parseArgs({
  options: {
    ...REFERENCE_OPTIONS,
    dedupe: { type: 'string', default: 'on' },
    runtime: { type: 'string', default: 'stitching' },
  },
});
const { port, supergraphSdl, subgraphs } = referenceSettings(values);
if (values.dedupe !== 'on' && values.dedupe !== 'off') throw new Error('--dedupe must be on or off');
if (values.runtime !== 'stitching' && values.runtime !== 'router') throw new Error('--runtime must be stitching or router');

// Each subgraph is fetched at exactly the location set below, so the URL says which one a fetch is for.
const byUrl = new Map(Object.entries(subgraphs).map(([name, target]) => [target.url, { name, secret: target.secret }]));

// onFetch runs after the executor has serialised the body (and after its in-flight dedupe), right before the
// HTTP call: the signature covers the exact body sent.
const signSubgraphRequests: GatewayPlugin = {
  onFetch({ url, options, setOptions }) {
    const target = byUrl.get(url);
    if (!target) return;
    if (options.body != null && typeof options.body !== 'string') throw new Error(`cannot sign a non-string body for ${target.name}`);
    const body = options.body ?? '';
    const identity = signIdentity({ secret: target.secret, caller: 'gateway', audience: target.name, viewer: ADMIN, body });
    setOptions({ ...options, headers: { ...options.headers, [IDENTITY_HEADER]: identity } });
  },
};

// Loaded only when asked for: the stitching runtime's process carries no napi planner.
const routerRuntime = values.runtime === 'router' ? { unifiedGraphHandler: (await import('@graphql-hive/router-runtime')).unifiedGraphHandler } : {};
const dedupeOff: HTTPTransportOptions = { deduplicateInflightRequests: false };
const runtime = createGatewayRuntime({
  supergraph: supergraphSdl,
  ...routerRuntime,
  graphqlEndpoint: '/graphql',
  transportEntries: {
    ...Object.fromEntries(Object.entries(subgraphs).map(([name, target]) => [name, { location: target.url }])),
    ...(values.dedupe === 'off' ? { '*.http': { options: dedupeOff } } : {}),
  },
  logging: new Logger({ writers: [new ConsoleLogWriter({ console: new Console(process.stderr) })] }),
  plugins: () => [signSubgraphRequests],
});
await runtime.getSchema();

const server = createServer(runtime);
await new Promise<void>((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, '127.0.0.1', resolve);
});
process.stdout.write(`ready http://127.0.0.1:${port}/graphql\n`);

const stop = async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await runtime.dispose();
  process.exit(0);
};
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void stop());

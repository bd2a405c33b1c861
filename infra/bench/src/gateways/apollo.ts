// The reference for benchmarks: a bare @apollo/gateway + @apollo/server, with its default subgraph fetcher and
// nothing of ours but what these subgraphs demand to answer at all (a signed identity on each subgraph request,
// for a fixed admin viewer),
// optionally with Apollo's own responseCachePlugin on Redis. A bench process, configured by its arguments:
//   node infra/bench/dist/gateways/apollo.js --port P --supergraph FILE --users URL --users-secret S
//     --orders URL --orders-secret S [--redis URL [--redis-prefix P]]   (with --redis: responseCachePlugin on
//     that Redis, its keys under P)
import { parseArgs } from 'node:util';
import { ApolloGateway, RemoteGraphQLDataSource, type GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import responseCachePlugin from '@apollo/server-plugin-response-cache';
import { startStandaloneServer } from '@apollo/server/standalone';
import { createRedis, IDENTITY_HEADER, RedisCache, signIdentity, waitForRedis } from '@fed/platform';
import { ADMIN, REFERENCE_OPTIONS, referenceSettings } from './reference.ts';

const { values } = parseArgs({
  options: {
    ...REFERENCE_OPTIONS,
    redis: { type: 'string' },
    'redis-prefix': { type: 'string', default: 'bench-bare:' },
  },
});
const { port, supergraphSdl, subgraphs } = referenceSettings(values);


/**
 * Apollo's own data source with its default fetcher (make-fetch-happen), plus the one header our subgraphs
 * demand. `process()` sends exactly `JSON.stringify` of the request without `http`, right after this hook, so
 * that is the body the signature covers.
 */
class SignedDataSource extends RemoteGraphQLDataSource {
  constructor(
    private readonly subgraph: string,
    private readonly secret: string,
    url: string,
  ) {
    super({ url });
  }

  override willSendRequest({ request }: GraphQLDataSourceProcessOptions): void {
    const { http, ...sent } = request;
    const identity = signIdentity({ secret: this.secret, caller: 'gateway', audience: this.subgraph, viewer: ADMIN, body: JSON.stringify(sent) });
    http?.headers.set(IDENTITY_HEADER, identity);
  }
}

const gateway = new ApolloGateway({
  supergraphSdl: supergraphSdl,
  buildService: ({ name }) => {
    const target = subgraphs[name];
    if (!target) throw new Error(`no URL for subgraph ${name}`);
    return new SignedDataSource(name, target.secret, target.url);
  },
});

let cache;
if (values.redis) {
  const redis = createRedis(values.redis);
  await waitForRedis(redis);
  cache = new RedisCache(redis, values['redis-prefix']);
}
const server = new ApolloServer({
  gateway,
  ...(cache ? { cache } : {}),
  // Private answers are cached per session; every request here is the same admin.
  plugins: cache ? [responseCachePlugin({ sessionId: async () => 'bench-admin' })] : [],
});
const { url } = await startStandaloneServer(server, { listen: { port, host: '127.0.0.1' } });
process.stdout.write(`ready ${url}graphql\n`);
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void server.stop().then(() => process.exit(0)));

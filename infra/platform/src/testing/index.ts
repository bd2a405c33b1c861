export * from './services.ts';
export * from './graphql.ts';
export * from './tcp-proxy.ts';
export * from './config.ts';
export * from './wait.ts';
export * from './prometheus.ts';
export * from './replica.ts';
export * from './stats.ts';

export * from './request-scope.ts';
export * from './metrics.ts';
export * from './tracing.ts';
export * from './telemetry.ts';
export * from './graphql-plugin.ts';
export * from './database.ts';

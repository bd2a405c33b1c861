export * from './services.ts';
export * from './graphql.ts';

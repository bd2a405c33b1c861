export * from './viewer.ts';
export * from './internal-token.ts';

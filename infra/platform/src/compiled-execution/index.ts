export { compiledExecution, DEFAULT_COMPILED_DOCUMENTS, type CompiledExecutionOptions, type CompiledExecutionStats, type SubgraphExecution } from './executor.ts';
export { instrumentCacheHints } from './cache-hints.ts';

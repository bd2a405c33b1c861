import type { IncomingMessage } from 'node:http';
import { Kind, type ArgumentNode, type DocumentNode, type ExecutionResult, type FieldNode, type OperationDefinitionNode, type VariableNode } from 'graphql';
import type { Viewer } from '@fed/platform';
import { isResumableField, type SubscriptionEngine } from '../subscriptions/engine.ts';
import type { AdmittedOperation } from '../subscriptions/operation.ts';
import { acceptedTypes, serveHttpStreams, startStream, writeResponse, type HttpStreamOptions } from './http-stream.ts';

export type { PlainRequest } from './http-stream.ts';

export interface SseOptions<TAdmission extends { viewer: Viewer | null }> extends HttpStreamOptions<TAdmission> {
  /** Comment lines that keep proxies from closing an idle stream (ms). */
  keepAliveMs?: number;
}

/** Variable that carries a reconnecting client's Last-Event-ID into the root field's `after`. */
const LAST_EVENT_VARIABLE = '__sse_last_event_id';
/** Cursors are short stream ids; anything longer, or with control characters, is not one of ours. */
const CURSOR = /^[\x21-\x7e]{1,128}$/;

/** The client asks for an event stream (graphql-sse sends exactly `text/event-stream`). */
export const acceptsEventStream = (req: IncomingMessage) => acceptedTypes(req).some(({ type }) => type === 'text/event-stream');

/**
 * Resumes the root field after `cursor` (the client's Last-Event-ID), when it is resumable (`after: ID`, an
 * `id` on its events): its `after` is set to the cursor, through the variable it already uses or a new one. A
 * new document: the admitted one is shared through the document cache.
 */
function resumeAfter(engine: SubscriptionEngine, admitted: AdmittedOperation, cursor: string): AdmittedOperation {
  const { operation, document } = admitted;
  const root = operation.selectionSet.selections[0];
  if (operation.selectionSet.selections.length !== 1 || root?.kind !== Kind.FIELD || !isResumableField(engine.schema(), root.name.value)) return admitted;
  const given = root.arguments?.find((argument) => argument.name.value === 'after')?.value;
  if (given?.kind === Kind.VARIABLE) return { ...admitted, variables: { ...admitted.variables, [given.name.value]: cursor } };
  const variable: VariableNode = { kind: Kind.VARIABLE, name: { kind: Kind.NAME, value: LAST_EVENT_VARIABLE } };
  const after: ArgumentNode = { kind: Kind.ARGUMENT, name: { kind: Kind.NAME, value: 'after' }, value: variable };
  const field: FieldNode = { ...root, arguments: [...(root.arguments ?? []).filter((argument) => argument.name.value !== 'after'), after] };
  const rewritten: OperationDefinitionNode = {
    ...operation,
    variableDefinitions: [
      ...(operation.variableDefinitions ?? []),
      { kind: Kind.VARIABLE_DEFINITION, variable, type: { kind: Kind.NAMED_TYPE, name: { kind: Kind.NAME, value: 'ID' } } },
    ],
    selectionSet: { ...operation.selectionSet, selections: [field] },
  };
  const resumed: DocumentNode = { ...document, definitions: document.definitions.map((definition) => (definition === operation ? rewritten : definition)) };
  return { ...admitted, document: resumed, operation: rewritten, variables: { ...admitted.variables, [LAST_EVENT_VARIABLE]: cursor } };
}

const eventLine = (result: ExecutionResult, cursor: string | undefined) =>
  `${cursor !== undefined && CURSOR.test(cursor) ? `id: ${cursor}\n` : ''}event: next\ndata: ${JSON.stringify(result)}\n\n`;
const COMPLETE = 'event: complete\ndata:\n\n';
const CUT = { draining: 'server shutting down; reconnect with Last-Event-ID', 'token-expired': 'token expired; reconnect with a fresh token' } as const;

/**
 * Subscriptions over Server-Sent Events, per graphql-sse's distinct-connections mode: `GET /graphql?query=…` or
 * `POST /graphql` (JSON) with `Accept: text/event-stream`, one subscription per response. Each result is
 * `event: next`, the end `event: complete`. Every event of a resumable subscription carries its cursor as the
 * SSE `id:`, and a reconnect with `Last-Event-ID` resumes after it. The same token, rate limit, budgets,
 * checks, shared upstreams and masking as graphql-ws. A stream the server ends for the client to reconnect
 * (its token expired, the gateway drains) ends without `complete`, with a comment saying why, which clients
 * treat as a lost connection.
 */
export function serveEventStreams<TAdmission extends { viewer: Viewer | null }>(options: SseOptions<TAdmission>) {
  return serveHttpStreams(options, {
    name: 'server-sent events',
    accepts: acceptsEventStream,
    contentType: 'text/event-stream; charset=utf-8',
    opening: '',
    event: eventLine,
    keepAlive: ':\n\n',
    keepAliveMs: options.keepAliveMs ?? 12_000,
    complete: COMPLETE,
    cut: (why) => `: ${CUT[why]}\n\n`,
    resume(req, admitted) {
      const lastEventId = req.headers['last-event-id'];
      return typeof lastEventId === 'string' && CURSOR.test(lastEventId.trim()) ? resumeAfter(options.engine, admitted, lastEventId.trim()) : admitted;
    },
    async plain(res, request, run) {
      // Apollo answers in JSON; this transport wraps a success in one `next`, then `complete`.
      request.headers.set('accept', 'application/json');
      const result = await run(request);
      if ((result.status ?? 200) !== 200 || 'bytes' in result || result.body.kind !== 'complete') return writeResponse(res, result);
      startStream(res, 'text/event-stream; charset=utf-8');
      res.end(`event: next\ndata: ${result.body.string}\n\n${COMPLETE}`);
    },
  });
}

export type EventStreams = ReturnType<typeof serveEventStreams>;

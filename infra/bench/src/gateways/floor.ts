// The floor of a subscription fan-out on this machine: a Node server that does nothing but hold the subscribers'
// connections and write each event to all of them, over the same transports the gateway serves (graphql-sse's
// distinct connections, graphql-ws), so the same clients read it. Any POST that is not a stream counts as a write:
// it is answered at once, and one event stamped with the current time goes to every subscriber. No GraphQL, no
// Redis, no subgraphs: what a gateway's fan-out costs beyond this is the gateway's own.
//   node infra/bench/dist/gateways/floor.js --port P
import { createServer, type ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import { WebSocketServer, type WebSocket } from 'ws';

const { values } = parseArgs({ options: { port: { type: 'string' } } });
const streams = new Set<ServerResponse>();
const subscriptions = new Map<WebSocket, Set<string>>();

const publish = () => {
  const payload = JSON.stringify({ data: { userEvents: { kind: 'UPDATED', occurredAt: new Date().toISOString() } } });
  // Framed once for every SSE subscriber, as the gateway does.
  const event = Buffer.from(`event: next\ndata: ${payload}\n\n`);
  for (const res of streams) res.write(event);
  for (const [socket, ids] of subscriptions) for (const id of ids) socket.send(`{"id":${JSON.stringify(id)},"type":"next","payload":${payload}}`);
};

const server = createServer((req, res) => {
  if (req.url === '/readyz') return void res.end('ok');
  if (req.method !== 'POST') return void res.writeHead(404).end();
  if ((req.headers.accept ?? '').includes('text/event-stream')) {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
    res.flushHeaders();
    streams.add(res);
    res.once('close', () => streams.delete(res));
    return;
  }
  req.resume();
  req.once('end', () => {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"data":{"updateUser":{"id":"1"}}}');
    publish();
  });
});

// graphql-ws's protocol, as far as its client needs for one subscription per socket.
const sockets = new WebSocketServer({ server, handleProtocols: () => 'graphql-transport-ws' });
sockets.on('connection', (socket) => {
  const ids = new Set<string>();
  socket.on('message', (data) => {
    const message = JSON.parse(String(data)) as { type: string; id?: string };
    if (message.type === 'connection_init') socket.send('{"type":"connection_ack"}');
    else if (message.type === 'ping') socket.send('{"type":"pong"}');
    else if (message.type === 'subscribe' && message.id) {
      ids.add(message.id);
      subscriptions.set(socket, ids);
    } else if (message.type === 'complete' && message.id) ids.delete(message.id);
  });
  socket.once('close', () => subscriptions.delete(socket));
});

server.listen(Number(values.port), '127.0.0.1');
process.once('SIGTERM', () => {
  for (const socket of sockets.clients) socket.terminate();
  server.closeAllConnections();
  server.close(() => process.exit(0));
});

import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface HttpFaultProxy {
  /** The target's URL (same path), pointing at the proxy instead. */
  url: string;
  /** Every request waits this long before it is forwarded: a slow service. */
  setDelay(ms: number): void;
  /**
   * Every answer waits this long after the service gave it: the service did its work (committed a write), but
   * the caller's deadline may pass before it hears so. The request is never cut while it is forwarded.
   */
  setAnswerDelay(ms: number): void;
  /**
   * While hanging, requests are accepted (headers and body read) and never answered: only the caller's own
   * deadline ends them. `false` forwards new requests again and cuts the hung ones.
   */
  setHanging(hanging: boolean): void;
  /**
   * While holding, requests are read and kept, not forwarded, until `release()` forwards them all: a service
   * exactly as slow as a test wants, with no clock.
   */
  hold(): void;
  release(): void;
  /** Requests held now. */
  held(): number;
  /** Requests accepted so far, hung ones included. */
  received(): number;
  close(): Promise<void>;
}

/** An HTTP proxy in front of one service that can slow it down, hold its requests, or make it hang (accept, never answer). */
export async function startHttpFaultProxy(target: string): Promise<HttpFaultProxy> {
  const to = new URL(target);
  let delayMs = 0;
  let answerDelayMs = 0;
  let hanging = false;
  let received = 0;
  const hung = new Set<ServerResponse>();
  let holding = false;
  const held: (() => void)[] = [];

  const forward = (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    const upstream = request(
      { host: to.hostname, port: to.port, path: req.url, method: req.method, headers: { ...req.headers, host: to.host } },
      (answer) => {
        const reply = () => {
          if (res.destroyed) return void answer.resume();
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        };
        if (answerDelayMs === 0) return reply();
        answer.pause();
        void sleep(answerDelayMs).then(reply);
      },
    );
    upstream.on('error', () => res.destroy());
    // With an answer delay, the service finishes what it was asked even when the caller gave up.
    if (answerDelayMs === 0) res.on('close', () => upstream.destroy());
    upstream.end(body);
  };

  const server = createServer((req, res) => {
    received += 1;
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (hanging) {
        hung.add(res);
        res.on('close', () => hung.delete(res));
        return;
      }
      const body = Buffer.concat(chunks);
      if (holding) return void held.push(() => forward(req, res, body));
      if (delayMs === 0) return forward(req, res, body);
      void sleep(delayMs).then(() => forward(req, res, body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(target);
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as AddressInfo).port);
  return {
    url: url.toString(),
    setDelay: (ms) => {
      delayMs = ms;
    },
    setAnswerDelay: (ms) => {
      answerDelayMs = ms;
    },
    setHanging: (value) => {
      hanging = value;
      if (!value) for (const res of hung) res.destroy();
    },
    hold: () => {
      holding = true;
    },
    release: () => {
      holding = false;
      for (const forwardHeld of held.splice(0)) forwardHeld();
    },
    held: () => held.length,
    received: () => received,
    close: async () => {
      for (const res of hung) res.destroy();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

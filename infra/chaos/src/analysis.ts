import type { Received } from './subscriber.ts';

/** One write of the load, in the order its writer sent it (each writer waits for one write before the next). */
export interface Write {
  userId: string;
  kind: 'USER_UPDATED' | 'ORDER_PLACED';
  /**
   * `acked`: the gateway answered with data and no error, so the write committed. `unknown`: an error or no answer,
   * which may or may not have committed; its event may come, or not.
   */
  outcome: 'acked' | 'unknown';
  /** The order a placeOrder created (acked only). */
  orderId?: string;
  gateway: string;
  error?: string;
}

export interface StreamFindings {
  subscriber: string;
  /** Events received (after the baseline), repeats included. */
  events: number;
  lost: string[];
  duplicated: string[];
  outOfOrder: string[];
}

/** Redis stream ids (`1795481066669-0`) in their order: milliseconds, then sequence. */
export function compareIds(a: string, b: string): number {
  const [aMs = 0n, aSeq = 0n] = a.split('-').map(BigInt);
  const [bMs = 0n, bSeq = 0n] = b.split('-').map(BigInt);
  if (aMs !== bMs) return aMs < bMs ? -1 : 1;
  return aSeq === bSeq ? 0 : aSeq < bSeq ? -1 : 1;
}

/**
 * Checks what one subscriber received for its user against that user's writes:
 * - **lost**: an acknowledged placeOrder whose ORDER_PLACED never came; fewer USER_UPDATED events than
 *   acknowledged updateUser writes;
 * - **duplicated**: an event id delivered twice; more USER_UPDATED events than updates sent; an ORDER_PLACED
 *   that no write explains;
 * - **out of causal order**: ids going backwards; orders announced in another order than they were placed; an
 *   ORDER_PLACED (from orders) before the USER_UPDATED (from users) of an update acknowledged before that order
 *   was placed, or after one of an update sent only once the order had been acknowledged.
 * Events up to `baseline` (received before the load began) are not counted.
 */
export function analyseStream(subscriber: { name: string; received: readonly Received[] }, writes: readonly Write[], baseline?: string): StreamFindings {
  const findings: StreamFindings = { subscriber: subscriber.name, events: 0, lost: [], duplicated: [], outOfOrder: [] };
  const tracked = subscriber.received.filter((event) => baseline === undefined || compareIds(event.id, baseline) > 0);
  findings.events = tracked.length;

  const seen = new Set<string>();
  const unique: Received[] = [];
  let newest: string | undefined;
  for (const event of tracked) {
    if (seen.has(event.id)) {
      findings.duplicated.push(`${event.kind} ${event.id} delivered again (by subscription #${event.attempt})`);
      continue;
    }
    seen.add(event.id);
    if (newest !== undefined && compareIds(event.id, newest) < 0) findings.outOfOrder.push(`${event.kind} ${event.id} came after ${newest}`);
    if (newest === undefined || compareIds(event.id, newest) > 0) newest = event.id;
    unique.push(event);
  }

  // For the write at index k: how many updates before it were acknowledged, and how many were sent at all.
  const updatesBefore: { acked: number; sent: number }[] = [];
  let acked = 0;
  let sent = 0;
  for (const write of writes) {
    updatesBefore.push({ acked, sent });
    if (write.kind === 'USER_UPDATED') {
      sent += 1;
      if (write.outcome === 'acked') acked += 1;
    }
  }
  const orderIndex = new Map(writes.flatMap((write, index) => (write.orderId ? [[write.orderId, index] as const] : [])));
  const unknownOrders = writes.filter((write) => write.kind === 'ORDER_PLACED' && write.outcome === 'unknown').length;

  let updates = 0;
  let latestOrder = -1;
  let unexplained = 0;
  const announced = new Set<string>();
  for (const event of unique) {
    if (event.kind === 'USER_UPDATED') {
      updates += 1;
      continue;
    }
    const index = event.kind === 'ORDER_PLACED' && event.orderId ? orderIndex.get(event.orderId) : undefined;
    if (index === undefined) {
      // An order placed by a write whose answer never came may well have committed.
      if (event.kind === 'ORDER_PLACED' && (unexplained += 1) <= unknownOrders) continue;
      findings.duplicated.push(`${event.kind} ${event.id}${event.orderId ? ` (order ${event.orderId})` : ''} that no write explains`);
      continue;
    }
    announced.add(event.orderId!);
    if (index < latestOrder) findings.outOfOrder.push(`ORDER_PLACED of order ${event.orderId} came after that of an order placed later`);
    latestOrder = Math.max(latestOrder, index);
    const expected = updatesBefore[index]!;
    if (updates < expected.acked) {
      findings.outOfOrder.push(`ORDER_PLACED of order ${event.orderId} came before the USER_UPDATED of ${expected.acked - updates} update(s) acknowledged before the order was placed`);
    } else if (updates > expected.sent) {
      findings.outOfOrder.push(`ORDER_PLACED of order ${event.orderId} came after the USER_UPDATED of ${updates - expected.sent} update(s) sent only once it was acknowledged`);
    }
  }

  for (const write of writes) {
    if (write.outcome === 'acked' && write.orderId && !announced.has(write.orderId)) {
      findings.lost.push(`ORDER_PLACED of order ${write.orderId} (acknowledged through ${write.gateway}) never came`);
    }
  }
  if (updates < acked) findings.lost.push(`${acked - updates} of ${acked} acknowledged updateUser writes never produced a USER_UPDATED event`);
  if (updates > sent) findings.duplicated.push(`${updates - sent} USER_UPDATED events more than the ${sent} updates sent`);
  return findings;
}

/** At most `limit` lines of a finding list, then how many more: a failure stays readable. */
export const summarise = (lines: readonly string[], limit = 8) => [...lines.slice(0, limit), ...(lines.length > limit ? [`… and ${lines.length - limit} more`] : [])];

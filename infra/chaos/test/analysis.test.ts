import { describe, expect, it } from 'vitest';
import { analyseStream, compareIds, type Write } from '../src/analysis.ts';
import type { Received } from '../src/subscriber.ts';

const update = (outcome: Write['outcome'] = 'acked'): Write => ({ userId: '2', kind: 'USER_UPDATED', outcome, gateway: 'gateway-A' });
const order = (orderId: string | undefined, outcome: Write['outcome'] = 'acked'): Write => ({ userId: '2', kind: 'ORDER_PLACED', outcome, gateway: 'gateway-B', ...(orderId && { orderId }) });
const U = (id: string, attempt = 1): Received => ({ id, kind: 'USER_UPDATED', attempt });
const O = (id: string, orderId: string, attempt = 1): Received => ({ id, kind: 'ORDER_PLACED', orderId, attempt });
const of = (received: Received[], writes: Write[], baseline?: string) => analyseStream({ name: 's', received }, writes, baseline);

describe('analyseStream: what the chaos suite calls lost, duplicated and out of causal order', () => {
  it('orders stream ids by milliseconds, then sequence (not as strings)', () => {
    expect(compareIds('999-0', '1000-0')).toBe(-1);
    expect(compareIds('1000-10', '1000-9')).toBe(1);
    expect(compareIds('1000-1', '1000-1')).toBe(0);
  });

  it('finds nothing in a stream that matches its writes, and ignores what came up to the baseline', () => {
    const findings = of([U('5-0'), U('10-0'), O('11-0', '7'), U('12-0'), O('13-0', '8')], [update(), order('7'), update(), order('8')], '5-0');
    expect(findings).toEqual({ subscriber: 's', events: 4, lost: [], duplicated: [], outOfOrder: [] });
  });

  it('calls an acknowledged order without its event, and too few update events, lost', () => {
    const findings = of([U('10-0')], [update(), order('7'), update()]);
    expect(findings.lost).toEqual(['ORDER_PLACED of order 7 (acknowledged through gateway-B) never came', '1 of 2 acknowledged updateUser writes never produced a USER_UPDATED event']);
  });

  it('lets a write that got no answer produce its event or not', () => {
    expect(of([U('10-0'), O('11-0', '99')], [update('unknown'), order(undefined, 'unknown')])).toMatchObject({ lost: [], duplicated: [], outOfOrder: [] });
    expect(of([], [update('unknown'), order(undefined, 'unknown')])).toMatchObject({ lost: [], duplicated: [], outOfOrder: [] });
  });

  it('calls an id delivered twice (a resume that replays), surplus updates and unexplained orders duplicated', () => {
    const findings = of([U('10-0'), U('10-0', 2), U('12-0'), O('13-0', '42')], [update()]);
    expect(findings.duplicated).toEqual([
      'USER_UPDATED 10-0 delivered again (by subscription #2)',
      'ORDER_PLACED 13-0 (order 42) that no write explains',
      '1 USER_UPDATED events more than the 1 updates sent',
    ]);
  });

  it('calls ids going backwards, orders swapped, and an order announced before an earlier update out of causal order', () => {
    expect(of([U('12-0'), U('10-0')], [update(), update()]).outOfOrder).toEqual(['USER_UPDATED 10-0 came after 12-0']);
    expect(of([O('10-0', '8'), O('11-0', '7')], [order('7'), order('8')]).outOfOrder).toEqual(['ORDER_PLACED of order 7 came after that of an order placed later']);
    // The update was acknowledged before the order was placed, yet its event (from users) comes after the order's (from orders).
    expect(of([O('10-0', '7'), U('11-0')], [update(), order('7')]).outOfOrder).toEqual([
      'ORDER_PLACED of order 7 came before the USER_UPDATED of 1 update(s) acknowledged before the order was placed',
    ]);
    expect(of([U('10-0'), O('11-0', '7')], [order('7'), update()]).outOfOrder).toEqual([
      'ORDER_PLACED of order 7 came after the USER_UPDATED of 1 update(s) sent only once it was acknowledged',
    ]);
  });
});

import { describe, expect, it } from 'vitest';
import { waitFor } from '../src/testing/wait.ts';

describe('waitFor', () => {
  it('returns what the check returns as soon as it stops throwing', async () => {
    let calls = 0;
    const value = await waitFor(() => {
      calls += 1;
      if (calls < 3) throw new Error('not yet');
      return 'done';
    });
    expect(value).toBe('done');
    expect(calls).toBe(3);
  });

  it('keeps polling past a short bound its caller asked for: a busy machine only makes the condition later', async () => {
    const until = Date.now() + 300;
    const reached = await waitFor(() => {
      if (Date.now() < until) throw new Error('not yet');
      return true;
    }, 20);
    expect(reached).toBe(true);
  });

  it('lets a wait inside another wait give up at its own bound, so that the outer one retries its step', async () => {
    let attempts = 0;
    await waitFor(async () => {
      attempts += 1;
      // As in "write, then give the event a moment; else write again": the event only comes on the third write.
      const arrives = attempts >= 3;
      await waitFor(() => expect(arrives).toBe(true), 20);
    });
    expect(attempts).toBe(3);
  });
});

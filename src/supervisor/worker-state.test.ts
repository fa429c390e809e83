// The worker state machine: every allowed transition passes, every other one throws naming both
// states, and the helpers agree with the table.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { IllegalTransitionError, WORKER_STATES, canTransition, isServing, isTerminal, transition, type WorkerState } from './worker-state.js';

/** The lifecycle as documented in worker-state.ts, written out independently of its table. */
const ALLOWED: ReadonlyArray<readonly [WorkerState, WorkerState]> = [
  ['starting', 'idle'],
  ['starting', 'stopping'],
  ['starting', 'crashed'],
  ['idle', 'active'],
  ['idle', 'stopping'],
  ['idle', 'crashed'],
  ['active', 'idle'],
  ['active', 'retiring'],
  ['active', 'stopping'],
  ['active', 'crashed'],
  ['retiring', 'stopping'],
  ['retiring', 'crashed'],
  ['stopping', 'exited'],
  ['stopping', 'crashed'],
];

const allowed = (from: WorkerState, to: WorkerState) => ALLOWED.some(([f, t]) => f === from && t === to);

describe('worker state machine', () => {
  for (const [from, to] of ALLOWED) {
    test(`${from} -> ${to} is allowed`, () => {
      assert.equal(canTransition(from, to), true);
      assert.equal(transition(from, to), to);
    });
  }

  test('every other pair of states throws IllegalTransitionError naming both', () => {
    let illegal = 0;
    for (const from of WORKER_STATES) {
      for (const to of WORKER_STATES) {
        if (allowed(from, to)) continue;
        illegal += 1;
        assert.equal(canTransition(from, to), false, `${from} -> ${to}`);
        assert.throws(
          () => transition(from, to, 'pool blog worker 3'),
          (error: unknown) => {
            assert.ok(error instanceof IllegalTransitionError);
            assert.ok(error.message.startsWith(`pool blog worker 3: illegal state transition ${from} -> ${to} `), error.message);
            return true;
          },
          `${from} -> ${to}`,
        );
      }
    }
    // 7 states, 49 pairs, 14 allowed: self-transitions and every move out of a terminal state included.
    assert.equal(illegal, WORKER_STATES.length ** 2 - ALLOWED.length);
    assert.equal(illegal, 35);
  });

  test('the message lists what is allowed from the current state', () => {
    assert.throws(() => transition('idle', 'retiring'), /worker: illegal state transition idle -> retiring \(allowed from idle: active, stopping, crashed\)/);
    assert.throws(() => transition('exited', 'idle'), /illegal state transition exited -> idle \(allowed from exited: none\)/);
  });

  test('terminal states are exactly those with no way out', () => {
    for (const state of WORKER_STATES) {
      const hasExit = WORKER_STATES.some((to) => allowed(state, to));
      assert.equal(isTerminal(state), !hasExit, state);
    }
  });

  test('serving states are starting, idle and active', () => {
    assert.deepEqual(
      WORKER_STATES.filter((state) => isServing(state)),
      ['starting', 'idle', 'active'],
    );
  });
});

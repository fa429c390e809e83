// The php-cgi worker lifecycle as an explicit state machine: states, the transitions allowed between
// them, and why a worker left (recycled, idle, stopped, timeout, crashed).

export const WORKER_STATES = ['starting', 'idle', 'active', 'retiring', 'stopping', 'exited', 'crashed'] as const;
/**
 * starting: spawned, not yet accepting. idle: ready for a request. active: running one. retiring:
 * running its last request, to be stopped when it ends. stopping: stop signal sent. exited: gone as
 * intended. crashed: gone unexpectedly (a signal, an exit nobody asked for, or a failed start).
 */
export type WorkerState = (typeof WORKER_STATES)[number];

/** Why a worker was stopped or why it ended; operators see these in logs and in restart counters. */
export const EXIT_REASONS = ['recycled', 'memory', 'idle', 'stopped', 'timeout', 'aborted', 'crashed'] as const;
/**
 * recycled: reached max_requests. memory: over max_worker_memory. idle: idle too long (ondemand) or
 * over max_spare_workers (dynamic). stopped: pool stop or scale-down. timeout: killed by
 * request_timeout. aborted: killed because its request was abandoned and did not end. crashed.
 */
export type ExitReason = (typeof EXIT_REASONS)[number];

const TRANSITIONS: Readonly<Record<WorkerState, readonly WorkerState[]>> = {
  starting: ['idle', 'stopping', 'crashed'],
  idle: ['active', 'stopping', 'crashed'],
  active: ['idle', 'retiring', 'stopping', 'crashed'],
  retiring: ['stopping', 'crashed'],
  stopping: ['exited', 'crashed'],
  exited: [],
  crashed: [],
};

export class IllegalTransitionError extends Error {
  constructor(from: WorkerState, to: WorkerState, who: string) {
    super(`${who}: illegal state transition ${from} -> ${to} (allowed from ${from}: ${TRANSITIONS[from].join(', ') || 'none'})`);
    this.name = 'IllegalTransitionError';
  }
}

export function canTransition(from: WorkerState, to: WorkerState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** Checks a move; throws IllegalTransitionError (a bug, never an operator problem) when it is not allowed. */
export function transition(from: WorkerState, to: WorkerState, who = 'worker'): WorkerState {
  if (!canTransition(from, to)) throw new IllegalTransitionError(from, to, who);
  return to;
}

/** True once the process is gone. */
export function isTerminal(state: WorkerState): boolean {
  return state === 'exited' || state === 'crashed';
}

/** True while the worker can be handed a request or is about to be. */
export function isServing(state: WorkerState): boolean {
  switch (state) {
    case 'starting':
    case 'idle':
    case 'active':
      return true;
    case 'retiring':
    case 'stopping':
    case 'exited':
    case 'crashed':
      return false;
    default: {
      const never: never = state;
      return never;
    }
  }
}

// Cleanup that also runs on Ctrl-C: sections register how to stop their peers and remove their temp
// dirs; SIGINT/SIGTERM/SIGHUP run every registered step (bounded in time), then exit.

import { constants } from 'node:os';

type Step = () => Promise<void> | void;

const steps = new Set<Step>();
let installed = false;
let interrupted = false;

/** How long the steps may take after a signal before the process exits anyway. */
const SIGNAL_CLEANUP_MS = 8000;

/** Registers a cleanup step; call the returned function once the step ran normally (or is not needed). */
export function onCleanup(step: Step): () => void {
  installSignalHandlers();
  steps.add(step);
  return () => {
    steps.delete(step);
  };
}

/** True once a signal asked the bench to stop; long loops may check it to end early. */
export function wasInterrupted(): boolean {
  return interrupted;
}

/** Runs every registered step once (in reverse order of registration), never throwing. */
export async function runCleanup(): Promise<void> {
  const pending = [...steps].reverse();
  steps.clear();
  for (const step of pending) {
    try {
      await step();
    } catch (error) {
      process.stderr.write(`[bench] cleanup step failed: ${error instanceof Error ? error.message : String(error)}\n`);
    }
  }
}

/** Makes SIGINT, SIGTERM and SIGHUP run the cleanup steps; call it first thing, so no window is left. */
export function installSignalHandlers(): void {
  if (installed) return;
  installed = true;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) {
      // A second signal: leave now. test/helpers/peers.ts still SIGKILLs its peers by PID on exit.
      process.exit(128 + signalNumber(signal));
    }
    interrupted = true;
    process.stderr.write(`\n[bench] ${signal}: stopping peers and removing temp dirs (again to quit at once)\n`);
    const deadline = setTimeout(() => process.exit(128 + signalNumber(signal)), SIGNAL_CLEANUP_MS);
    void runCleanup().finally(() => {
      clearTimeout(deadline);
      process.exit(128 + signalNumber(signal));
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
}

function signalNumber(signal: NodeJS.Signals): number {
  return constants.signals[signal] ?? 1;
}

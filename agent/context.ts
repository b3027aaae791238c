/** What every command receives instead of touching globals, so tests can call commands directly. */
import type { Reporter } from './report.js';

export interface Context {
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** The clock; tests move it to exercise schedules. */
  now: () => Date;
  reporter: Reporter;
  /** Aborted on SIGINT/SIGTERM: long steps stop, clean up and record what happened. */
  signal: AbortSignal;
}

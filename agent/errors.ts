/**
 * One error type for everything a sysadmin can act on. `main.ts` maps it to an exit
 * code in one place; the message says what failed and where, the hint what to do next.
 */

/** Exit codes, as `respaldo --help` lists them. */
export const Exit = {
  ok: 0,
  internal: 1,
  usage: 2,
  partial: 3,
  nothing: 4,
  locked: 11,
  interrupted: 130,
} as const;
export type ExitCode = (typeof Exit)[keyof typeof Exit];

export class RespaldoError extends Error {
  readonly exitCode: ExitCode;
  readonly hint: string | undefined;
  constructor(message: string, opts: { exitCode: ExitCode; hint?: string; cause?: unknown }) {
    super(message, { cause: opts.cause });
    this.name = 'RespaldoError';
    this.exitCode = opts.exitCode;
    this.hint = opts.hint;
  }
}

/** A usage or configuration error (exit 2). */
export function usageError(message: string, hint?: string): RespaldoError {
  return new RespaldoError(message, { exitCode: Exit.usage, ...(hint === undefined ? {} : { hint }) });
}

/** The message of any thrown value, for reports. */
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * A backup of one repository that did not complete. It becomes a `failure` record; the
 * run goes on with the other repositories and ends with exit code 3.
 */
export type FailureStage = 'source' | 'target' | 'transfer' | 'manifest' | 'verify' | 'record' | 'copy' | 'interrupted' | 'internal';

export class BackupFailure extends Error {
  constructor(
    readonly stage: FailureStage,
    message: string,
    readonly hint: string,
    readonly extra: { detail?: string; exitCode?: number; signal?: string } = {},
  ) {
    super(message);
    this.name = 'BackupFailure';
  }
}

/** What went wrong and, for a BackupFailure, what to do: "message; hint". */
export function withHint(e: unknown): string {
  return e instanceof BackupFailure ? `${e.message}; ${e.hint}` : messageOf(e);
}

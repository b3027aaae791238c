/** `failure`: a backup (or a run) that did not complete. Logged on FOR 7.5 DSE 05 (bitácora de fallas). */
import { z } from 'zod';
import { isoTime, repositoryKind, repositoryName, snapshotId, trigger } from '../common.js';
import { requested } from './shared.js';

export const failureStage = z.enum(['request', 'restore', 'source', 'target', 'transfer', 'manifest', 'verify', 'record', 'copy', 'interrupted', 'internal']);

export const failureRecord = z
  .object({
    /** Absent for a failure of the run itself, such as a run that was killed. */
    repository: repositoryName.optional(),
    kind: repositoryKind.optional(),
    /** The request the failure is about: the backup request behind the repository, or a restore request that could not be carried out. */
    request: requested.optional(),
    trigger,
    operator: z.string().min(1).optional(),
    stage: failureStage,
    /** One line: what failed and why. */
    cause: z.string().min(1),
    /** The tail of the tool's stderr, when a tool failed. */
    detail: z.string().optional(),
    exit_code: z.number().int().optional(),
    signal: z.string().optional(),
    /** What to do next. */
    hint: z.string().min(1),
    /** The newest complete snapshot, untouched by the failure. */
    previous_snapshot: snapshotId.nullable().optional(),
    /** For a run that died: the process that held the lock. */
    interrupted: z.object({ pid: z.number().int(), started: isoTime }).strict().optional(),
  })
  .strict();

/**
 * `snapshot.yaml`: the summary stored beside a snapshot's data and manifest. Its sha256 is
 * carried by the backup record, and a snapshot that became visible but was never recorded
 * (the agent was stopped in between) is recorded from it by the next run.
 */
import { z } from 'zod';
import { hostName, isoTime, repositoryKind, repositoryName, sha256Digest, snapshotId } from './common.js';
import { backupRecord } from './records/backup.js';

export const snapshotSummary = z
  .object({
    schema: z.literal('respaldo/v1'),
    host: hostName,
    repository: repositoryName,
    kind: repositoryKind,
    id: snapshotId,
    started: isoTime,
    finished: isoTime,
    paths: z.array(z.string()),
    exclude: z.array(z.string()),
    manifest: sha256Digest,
    previous: backupRecord.shape.previous,
    size: backupRecord.shape.size,
    changed: backupRecord.shape.changed,
    verification: backupRecord.shape.verification,
    database: backupRecord.shape.database,
    git: backupRecord.shape.git,
    warnings: backupRecord.shape.warnings,
    trigger: backupRecord.shape.trigger,
    operator: backupRecord.shape.operator,
  })
  .strict();
export type SnapshotSummary = z.infer<typeof snapshotSummary>;

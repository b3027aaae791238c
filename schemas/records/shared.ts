/** Pieces that several record types share. */
import { z } from 'zod';
import { hostName, isoTime, repositoryKind, repositoryName, requestId, sha256Digest, snapshotId, trigger, verificationLevel } from '../common.js';
import { restoreCheck } from '../database.js';

/** Points at another record: its host, its seq and the sha256 of its bytes. */
export const recordRef = z
  .object({ host: hostName, seq: z.number().int().positive(), digest: sha256Digest })
  .strict();

/** Who or what started the work: cron, or a person named by their login (clause 4.3.1). */
export const runBy = {
  trigger,
  operator: z.string().min(1).optional(),
};

/**
 * Whether JAA approved backing the repository up (clause 4.1.1): the approved request's
 * number, or `unrequested` for a repository the host configuration lists with no approved
 * request (backed up all the same, but not JAA's responsibility). Absent in records made
 * before requests existed.
 */
export const requested = z.union([requestId, z.literal('unrequested')]);

/** The repository a record is about. */
export const about = {
  repository: repositoryName,
  kind: repositoryKind,
  request: requested.optional(),
};

export const warning = z.object({ code: z.string().min(1), message: z.string().min(1) }).strict();

/** Re-reading stored files and matching them against the SHA-256 manifest. */
export const checksumCheck = z
  .object({
    scope: z.enum(['changed', 'full']),
    files: z.number().int().nonnegative(),
    bytes: z.number().int().nonnegative(),
    mismatches: z.number().int().nonnegative(),
  })
  .strict();

/** Clause 4.2.1: the total size against the previous snapshot. */
export const sizeCheck = z
  .object({
    result: z.enum(['ok', 'warning', 'first']),
    bytes: z.number().int().nonnegative(),
    previous_bytes: z.number().int().nonnegative().nullable(),
    change_percent: z.number().nullable(),
    shrink_warning: z.number().nonnegative(),
    growth_warning: z.number().nonnegative(),
  })
  .strict();

export const verification = z
  .object({
    level: verificationLevel,
    size: sizeCheck.optional(),
    checksum: checksumCheck.optional(),
    /** A database's dumps restored into a throwaway instance. */
    restore: restoreCheck.optional(),
  })
  .strict();

export const snapshotRef = z
  .object({
    id: snapshotId,
    /** Which target holds it: `primary` (JAA's copy) or `secondary` (CSC's copy). */
    target: z.enum(['primary', 'secondary']),
    /** `<host>/<repository>/snapshots/<id>`, relative to the target: records never hold local paths. */
    location: z.string().regex(/^[a-z0-9][a-z0-9.-]*\/[a-z0-9][a-z0-9._-]*\/snapshots\/\d{8}T\d{6}Z(-\d+)?$/, 'a location such as web01/portal/snapshots/20261122T031500Z'),
    /** sha256 of the snapshot's `snapshot.yaml`. */
    digest: sha256Digest,
    /** sha256 of the snapshot's `manifest.jsonl`. */
    manifest: sha256Digest,
  })
  .strict();

export const timeSpan = {
  started: isoTime,
  finished: isoTime,
};

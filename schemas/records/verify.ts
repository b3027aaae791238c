/**
 * `verify`: stored snapshots checked again against their manifests, outside a backup: on one
 * target, every snapshot named listed (names, types, sizes, times, modes, links; nothing
 * missing, nothing added) with its `manifest.jsonl` and `snapshot.yaml` matched against the
 * digests the records carry, and the files' bytes read back as `read` says.
 */
import { z } from 'zod';
import { sha256Digest, snapshotId } from '../common.js';
import { about, checksumCheck, runBy, snapshotRef, timeSpan } from './shared.js';

/** A position in the rotation of a subset read: files are placed by the first 32 bits of their SHA-256. */
const position = z.number().min(0).max(1);

export const verifyRecord = z
  .object({
    ...about,
    ...runBy,
    ...timeSpan,
    /**
     * `at-rest`: `respaldo verify`; `rotation`: the share `respaldo run` reads each day so that
     * every file is read within `verify.reread-within`; `before-copy`: the newest copy at CSC
     * re-read in full before a new copy is linked to it.
     */
    reason: z.enum(['at-rest', 'rotation', 'before-copy']),
    target: z.enum(['primary', 'secondary']),
    /**
     * How the bytes were read: at the target against the manifest (`rehash`), or by rsync's
     * checksum against the primary's copy (`rsync-checksum`, an rsync daemon). Always written;
     * absent from a record of the earlier shape (below), which did not say.
     */
    method: z.enum(['rehash', 'rsync-checksum']).optional(),
    read: z
      .object({
        /** Every file, the next share of the rotation, or none (the listing and the manifests only). */
        data: z.enum(['all', 'subset', 'none']),
        /** The share read: from `from` up to `to`, wrapping past 1 to 0; the next subset starts at `to`. */
        subset: z.object({ from: position, to: position }).strict().optional(),
        /** Files read (a file hard-linked into several snapshots is read once) and their bytes. */
        files: z.number().int().nonnegative(),
        bytes: z.number().int().nonnegative(),
      })
      .strict()
      .refine((r) => (r.data === 'subset') === (r.subset !== undefined), { message: 'a subset read says its share (subset: { from, to }), and only a subset read does', path: ['subset'] }),
    /** Every snapshot checked, with the digests it was checked against (those of its backup record). */
    snapshots: z
      .array(
        z
          .object({
            id: snapshotId,
            location: z.string().regex(/^[a-z0-9][a-z0-9.-]*\/[a-z0-9][a-z0-9._-]*\/snapshots\/\d{8}T\d{6}Z(-\d+)?$/, 'a location such as web01/portal/snapshots/20261122T031500Z'),
            digest: sha256Digest.nullable(),
            manifest: sha256Digest.nullable(),
            /** `unchecked`: the target could not check it (a daemon's copy of a snapshot the primary no longer holds); neither good nor bad. */
            result: z.enum(['ok', 'failed', 'unchecked']),
            /** How many problems this snapshot has (the first ones are listed under `problems`). */
            problems: z.number().int().nonnegative(),
          })
          .strict(),
      )
      .min(1),
    result: z.enum(['ok', 'failed']),
    /** The first problems found (at most 20), each with its snapshot; paths relative to the snapshot's folder. */
    problems: z.array(z.object({ snapshot: snapshotId.optional(), path: z.string(), problem: z.string() }).strict()),
  })
  .strict();

/**
 * The shape `verify` records had before respaldo verify existed: one snapshot, the newest
 * copy at CSC re-read in full before a new copy was linked to it. Such records are read, as
 * the record above (`fromLegacyVerify`), and never written: they stay genuine after an upgrade.
 */
export const legacyVerifyRecord = z
  .object({
    ...about,
    ...runBy,
    ...timeSpan,
    snapshot: snapshotRef,
    checksum: checksumCheck,
    result: z.enum(['ok', 'failed']),
    problems: z.array(z.object({ path: z.string(), problem: z.string() }).strict()),
  })
  .strict();

/** A record of the earlier shape as one of today's: a check before a copy of one snapshot, every file read. */
export function fromLegacyVerify(r: z.infer<typeof legacyVerifyRecord>): z.infer<typeof verifyRecord> {
  const { snapshot, checksum, problems, ...rest } = r;
  return {
    ...rest,
    reason: 'before-copy',
    target: snapshot.target,
    read: { data: 'all', files: checksum.files, bytes: checksum.bytes },
    snapshots: [{ id: snapshot.id, location: snapshot.location, digest: snapshot.digest, manifest: snapshot.manifest, result: r.result, problems: checksum.mismatches }],
    problems: problems.map((p) => ({ snapshot: snapshot.id, ...p })),
  };
}

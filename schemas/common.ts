/**
 * Small shapes shared by the config, the records and the snapshot files.
 * Names are restricted so that they are safe as path segments, as git paths
 * and as OpenSSH principals, and so that a record's header stays a plain line.
 */
import { z } from 'zod';

/** A host name as it appears in paths, records and `allowed_signers`. */
export const hostName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9.-]{0,62}$/, 'a host name is lowercase letters, digits, dots and dashes (e.g. "web01")');

/** A repository name: one path segment under `<target>/<host>/`. */
export const repositoryName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'a repository name is lowercase letters, digits, ".", "_" and "-" (e.g. "portal-db")');

/** A request's number on form FOR 7.5 DSE 05: `REQ-2026-0001`. */
export const REQUEST_ID_RE = /^REQ-(\d{4})-(\d{4})$/;
export const requestId = z.string().regex(REQUEST_ID_RE, 'a request number such as REQ-2026-0001');

/** The four kinds of repository of clause 4.1 of PRO 7.5 DSE 02. */
export const repositoryKind = z.enum(['config', 'source', 'database', 'files']);
export type RepositoryKind = z.infer<typeof repositoryKind>;

export const sha256Digest = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'a digest is "sha256:" and 64 hex digits');

/** A snapshot id is the UTC time the snapshot was started, with a suffix when two start in the same second. */
/** A snapshot id: its UTC start time, with a suffix when two start in the same second. */
export const SNAPSHOT_ID_RE = /^\d{8}T\d{6}Z(-\d+)?$/;
export const snapshotId = z.string().regex(SNAPSHOT_ID_RE, 'a snapshot id looks like 20261122T031500Z');

/** Orders snapshot ids by time, then by suffix as a number ("…Z-2" before "…Z-10"). */
export function compareSnapshotIds(a: string, b: string): number {
  const [baseA = '', suffixA = '0'] = a.split('-');
  const [baseB = '', suffixB = '0'] = b.split('-');
  return baseA < baseB ? -1 : baseA > baseB ? 1 : Number(suffixA) - Number(suffixB);
}

export const isoTime = z.string().datetime({ offset: false, precision: undefined, message: 'a UTC time such as 2026-11-22T03:15:00.000Z' });

/** The levels of verification of DESIGN.md, weakest first. */
export const verificationLevel = z.enum(['none', 'size', 'checksum', 'restore']);
export type VerificationLevel = z.infer<typeof verificationLevel>;

/** What started a run: cron, or a person (clause 4.3.1 logs manual runs). */
export const trigger = z.enum(['scheduled', 'manual']);

const durationUnits: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Parses "90m", "12h", "7d", "2w" into milliseconds; undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+)\s*([mhdw])$/.exec(text.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  return n > 0 ? n * durationUnits[m[2]!]! : undefined;
}

export const duration = z.string().refine((s) => parseDuration(s) !== undefined, {
  message: 'a duration is a number and a unit: m (minutes), h (hours), d (days) or w (weeks), e.g. "7d"',
});

/** "20%" or 20, as a non-negative number of percent. */
export const percent = z.union([
  z.number().nonnegative(),
  z
    .string()
    .regex(/^\d+(\.\d+)?%$/, 'a percentage such as "20%"')
    .transform((s) => Number(s.slice(0, -1))),
]);

/** "1.5 GiB": sizes as the reports, labels and the site write them. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

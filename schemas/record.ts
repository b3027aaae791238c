/**
 * The signed event record: its header, its body per type, its exact bytes and its place
 * in the records folder. The agent writes records with these functions and the site and
 * `respaldo records verify` read them with the same ones, so they cannot disagree.
 *
 * Every record starts with the same six plain lines, in this order, so that a short
 * shell script can audit a chain without a YAML parser:
 *
 *     schema: respaldo/v1
 *     type: backup
 *     host: web01
 *     seq: 42
 *     prev: sha256:<hex of the previous record file's bytes>   (or `prev: null` for seq 1)
 *     at: 2026-11-22T03:15:07.123Z
 */
import { createHash } from 'node:crypto';
import { stringify } from 'yaml';
import { CORE_SCHEMA, load } from 'js-yaml';
import { z } from 'zod';
import { hostName, isoTime, sha256Digest } from './common.js';
import { backupRecord } from './records/backup.js';
import { copyRecord } from './records/copy.js';
import { drillRecord } from './records/drill.js';
import { enrolmentRecord } from './records/enrolment.js';
import { failureRecord } from './records/failure.js';
import { incidentRecord } from './records/incident.js';
import { mediaLoanRecord } from './records/media-loan.js';
import { pruneRecord } from './records/prune.js';
import { receiptRecord } from './records/receipt.js';
import { restoreRecord } from './records/restore.js';
import { fromLegacyVerify, legacyVerifyRecord, verifyRecord } from './records/verify.js';

export const RECORD_SCHEMA = 'respaldo/v1';

/** The SSHSIG namespace of record signatures: `ssh-keygen -Y verify -n respaldo-record`. */
export const RECORD_NAMESPACE = 'respaldo-record';

/** Body schemas by record type; the header is common to all. */
export const recordBodies = {
  enrolment: enrolmentRecord,
  backup: backupRecord,
  copy: copyRecord,
  receipt: receiptRecord,
  verify: verifyRecord,
  restore: restoreRecord,
  failure: failureRecord,
  prune: pruneRecord,
  'media-loan': mediaLoanRecord,
  drill: drillRecord,
  incident: incidentRecord,
} as const;

export type RecordType = keyof typeof recordBodies;
export const recordTypes = Object.keys(recordBodies) as RecordType[];
export type RecordBody<T extends RecordType> = z.infer<(typeof recordBodies)[T]>;

export const recordHeader = z
  .object({
    schema: z.literal(RECORD_SCHEMA),
    type: z.enum(recordTypes as [RecordType, ...RecordType[]]),
    host: hostName,
    seq: z.number().int().positive(),
    prev: sha256Digest.nullable(),
    at: isoTime,
  })
  .strict();
export type RecordHeader = z.infer<typeof recordHeader>;

export type AnyRecord = { [T in RecordType]: RecordHeader & { type: T } & RecordBody<T> }[RecordType];

const HEADER_RE =
  /^schema: respaldo\/v1\ntype: ([a-z-]+)\nhost: ([a-z0-9][a-z0-9.-]*)\nseq: ([1-9]\d*)\nprev: (null|sha256:[0-9a-f]{64})\nat: (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)\n/;

/** Reads the six header lines without parsing YAML; undefined when they are not exactly as written by respaldo. */
export function readHeader(text: string): RecordHeader | undefined {
  const m = HEADER_RE.exec(text);
  if (!m) return undefined;
  const parsed = recordHeader.safeParse({ schema: RECORD_SCHEMA, type: m[1], host: m[2], seq: Number(m[3]), prev: m[4] === 'null' ? null : m[4], at: m[5] });
  return parsed.success ? parsed.data : undefined;
}

/** The exact text of a record. The header comes first, in the fixed order above. */
export function serializeRecord<T extends RecordType>(header: RecordHeader & { type: T }, body: RecordBody<T>): string {
  const ordered = { schema: RECORD_SCHEMA, type: header.type, host: header.host, seq: header.seq, prev: header.prev, at: header.at, ...body };
  const text = stringify(ordered, { lineWidth: 0, minContentWidth: 0, aliasDuplicateObjects: false });
  // The header contract is what shell audits rely on; fail loudly rather than sign something else.
  if (!readHeader(text)) throw new Error(`record header did not serialize as expected:\n${text.split('\n').slice(0, 6).join('\n')}`);
  return text;
}

/** Header and body of each type, built once. */
const fullSchemas = Object.fromEntries(recordTypes.map((type) => [type, recordHeader.merge(recordBodies[type] as unknown as z.AnyZodObject).strict()])) as Record<RecordType, z.AnyZodObject>;

export type ParsedRecord = { ok: true; record: AnyRecord } | { ok: false; error: string };

/** Parses and validates a record's text: header lines, then the full YAML against its type's schema. */
export function parseRecord(text: string): ParsedRecord {
  const header = readHeader(text);
  if (!header) return { ok: false, error: 'the first six lines are not a respaldo/v1 record header (schema, type, host, seq, prev, at)' };
  let data: unknown;
  try {
    // js-yaml with YAML 1.2's core schema: what `yaml` writes, read back seven times faster (a
    // 100,000-record site build parses every record once); duplicate keys are an error.
    data = load(text, { schema: CORE_SCHEMA });
  } catch (e) {
    return { ok: false, error: `not valid YAML: ${(e as Error).message.split('\n')[0]}` };
  }
  const result = fullSchemas[header.type].safeParse(data);
  // A record of an earlier shape is still the record it was: read as today's.
  const legacy = !result.success && header.type === 'verify' ? recordHeader.merge(legacyVerifyRecord).strict().safeParse(data) : undefined;
  if (legacy?.success) {
    const { schema: s, type, host, seq, prev, at, ...body } = legacy.data;
    return { ok: true, record: { schema: s, type, host, seq, prev, at, ...fromLegacyVerify(body) } as AnyRecord };
  }
  if (!result.success) {
    const first = result.error.issues[0]!;
    return { ok: false, error: `field ${first.path.join('.') || '(top)'}: ${first.message}` };
  }
  return { ok: true, record: result.data as AnyRecord };
}

/** `sha256:<hex>` of some bytes: how `prev` and other digests are written. */
export function digestOf(bytes: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Where a record lives inside the records folder: `hosts/<host>/<yyyy>/<seq>-<type>.yaml`. */
export function recordPath(header: Pick<RecordHeader, 'host' | 'seq' | 'type' | 'at'>): string {
  return `hosts/${header.host}/${header.at.slice(0, 4)}/${String(header.seq).padStart(8, '0')}-${header.type}.yaml`;
}

/** Matches a record's path relative to the records folder; groups: host, year, seq, type. */
export const RECORD_PATH_RE = /^hosts\/([a-z0-9][a-z0-9.-]*)\/(\d{4})\/(\d{8,})-([a-z-]+)\.yaml$/;

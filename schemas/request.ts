/**
 * The files people write into the records folder, as opposed to the agents' signed records:
 *
 *     requests/REQ-YYYY-NNNN.yaml    a developer's request on form FOR 7.5 DSE 05 (clause 4.1.1 backups, 4.3 restores)
 *     approvals/REQ-YYYY-NNNN.yaml   JAA's decision on it; it counts only when every commit that touched it is signed by an approver
 *     checkpoints/<time>.yaml        the head of every host's chain, anchored by JAA's signed commit
 *
 * Their authority comes from git (who signed the commit), never from a field in the file:
 * `approver` in an approval says who meant to decide, the signature says who did.
 */
import { LineCounter, parseDocument, stringify } from 'yaml';
import { z } from 'zod';
import { retention, schedule } from './config.js';
import { hostName, isoTime, repositoryKind, repositoryName, REQUEST_ID_RE, requestId, sha256Digest, snapshotId } from './common.js';
import { restoreReason } from './records/restore.js';

export { REQUEST_ID_RE, requestId };

/** `requests/REQ-2026-0001.yaml` and the like: where each kind of file lives. */
export const requestPath = (id: string) => `requests/${id}.yaml`;
export const approvalPath = (id: string) => `approvals/${id}.yaml`;
export const CHECKPOINT_PATH_RE = /^checkpoints\/(\d{8}T\d{6}Z)\.yaml$/;

const absolutePath = z.string().regex(/^\/(?!.*(^|\/)\.\.?(\/|$)).*$/, 'an absolute path without "." or ".." parts, e.g. /var/www/portal');
const day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'a date such as 2026-11-25');

/** Who asks: a developer (CGDW) and their area, as the paper form has them. */
const requester = z.object({ name: z.string().min(1, 'who asks: a name'), area: z.string().min(1, 'the area that asks, e.g. "Desarrollo web"') }).strict();

/**
 * What to back up. Local details stay in the host configuration: folders are named as
 * paths (which the host allows or not), a database by its name on a server that the host
 * configuration names (`requests.servers`), never by a connection string.
 */
export const requestWhat = z.union([
  z.object({ paths: z.array(absolutePath).min(1, 'list at least one folder or file') }).strict(),
  z.object({ git: absolutePath }).strict(),
  z.object({ database: z.string().min(1), server: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'the name of a server in the host configuration (requests.servers), e.g. main-pg') }).strict(),
]);

const common = {
  schema: z.literal('respaldo/v1'),
  form: z.literal('FOR 7.5 DSE 05'),
  id: requestId,
  date: day,
  requester,
  host: hostName,
  repository: repositoryName,
  notes: z.string().optional(),
};

const backupFields = z
  .object({
    ...common,
    type: z.literal('backup'),
    kind: repositoryKind,
    what: requestWhat,
    /** Left out: the procedure's default for the kind (source weekly, database daily, config and files every 60 days). */
    schedule: schedule.optional(),
    retention: retention.optional(),
  })
  .strict();

const restoreFields = z
  .object({
    ...common,
    type: z.literal('restore'),
    /** One of the two: a snapshot, or a point in time (the newest snapshot at or before it, or a database's recovery to it). */
    snapshot: snapshotId.optional(),
    at: isoTime.optional(),
    /** Some paths of the snapshot; left out, the whole snapshot. */
    paths: z.array(z.string().min(1)).optional(),
    destination: absolutePath,
    /** A restore over the repository's own folders (production) happens only when the request says so. */
    'into-production': z.boolean().optional(),
    reason: restoreReason,
    reason_detail: z.string().optional(),
  })
  .strict();

export const request = z.discriminatedUnion('type', [backupFields, restoreFields]).superRefine((r, ctx) => {
  const at = (field: string, message: string) => ctx.addIssue({ code: z.ZodIssueCode.custom, path: [field], message });
  if (r.type === 'backup') {
    if ('git' in r.what && r.kind !== 'source') at('what', `a git repository is backed up as kind "source", not "${r.kind}"`);
    if ('database' in r.what && r.kind !== 'database') at('what', `a database is backed up as kind "database", not "${r.kind}"`);
  } else if (r.snapshot && r.at) at('at', 'give a snapshot or a point in time, not both');
});
export type Request = z.infer<typeof request>;
export type BackupRequest = z.infer<typeof backupFields>;
export type RestoreRequest = z.infer<typeof restoreFields>;

export const approval = z
  .object({
    schema: z.literal('respaldo/v1'),
    type: z.literal('approval'),
    request: requestId,
    /** sha256 of the request file's bytes: a request changed after its approval is no longer approved. */
    request_digest: sha256Digest,
    decision: z.enum(['approved', 'rejected']),
    /** Who meant to decide (the key's principal); what counts is the commit's signature. */
    approver: z.string().min(1),
    at: isoTime,
    why: z.string().optional(),
  })
  .strict();
export type Approval = z.infer<typeof approval>;

/** `  web01: 12 sha256:…`: one plain line per host, so that a shell script can read it. */
const HEAD_RE = /^([1-9]\d*) (sha256:[0-9a-f]{64})$/;
export const checkpoint = z
  .object({
    schema: z.literal('respaldo/v1'),
    type: z.literal('checkpoint'),
    at: isoTime,
    heads: z.record(hostName, z.string().regex(HEAD_RE, 'a head is "<seq> sha256:<hex>", e.g. "12 sha256:ab…"')),
  })
  .strict();
export type Checkpoint = z.infer<typeof checkpoint>;

export function parseHead(text: string): { seq: number; digest: string } {
  const m = HEAD_RE.exec(text)!;
  return { seq: Number(m[1]), digest: m[2]! };
}

/** A problem of a file, named by its path, the line and the field. */
export interface FileProblem {
  path: string;
  line: number | undefined;
  field: string | undefined;
  message: string;
}

export function problemText(p: FileProblem): string {
  return `${p.path}${p.line ? `:${p.line}` : ''}: ${p.field ? `${p.field}: ` : ''}${p.message}`;
}

/** Parses a YAML file against a schema; each problem names the file, the line and the field. */
export function parseFile<T>(path: string, text: string, schema: z.ZodType<T>): { ok: true; value: T } | { ok: false; problems: FileProblem[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length) return { ok: false, problems: doc.errors.map((e) => ({ path, line: e.linePos?.[0]?.line, field: undefined, message: `not valid YAML: ${e.message.split('\n')[0]}` })) };
  const parsed = schema.safeParse(doc.toJS());
  if (parsed.success) return { ok: true, value: parsed.data };
  return {
    ok: false,
    problems: parsed.error.issues.map((issue) => {
      const node = doc.getIn(issue.path, true) as { range?: [number, number] } | undefined;
      const parent = issue.path.length > 1 ? (doc.getIn(issue.path.slice(0, -1), true) as { range?: [number, number] } | undefined) : undefined;
      const offset = node?.range?.[0] ?? parent?.range?.[0];
      return { path, line: offset === undefined ? undefined : lines.linePos(offset).line, field: issue.path.length ? issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : p)).join('.').replace(/\.\[/g, '[') : undefined, message: issue.message };
    }),
  };
}

/** The bytes of a request, approval or checkpoint as respaldo writes them: the schema's fields in order, plain YAML. */
export function serializeFile(value: object): string {
  return stringify(value, { lineWidth: 0 });
}

import { describe, expect, it } from 'vitest';
import { parseRecord } from './record.js';

const header = ['schema: respaldo/v1', 'type: verify', 'host: web01', 'seq: 7', 'prev: sha256:' + 'a'.repeat(64), 'at: 2026-11-20T03:00:05.000Z'];
const snapshot = ['snapshot:', '  id: 20261120T030000Z', '  target: secondary', '  location: web01/docs/snapshots/20261120T030000Z', '  digest: sha256:' + 'b'.repeat(64), '  manifest: sha256:' + 'c'.repeat(64)];
/** A `verify` record as the copy's check wrote it before respaldo verify existed. */
const legacy = [
  ...header,
  'repository: docs',
  'kind: files',
  'trigger: scheduled',
  'started: 2026-11-20T03:00:01.000Z',
  'finished: 2026-11-20T03:00:05.000Z',
  ...snapshot,
  'checksum:',
  '  scope: full',
  '  files: 3',
  '  bytes: 100',
  '  mismatches: 1',
  'result: failed',
  'problems:',
  '  - path: data/etc/a.txt',
  "    problem: its bytes differ from the manifest's",
  '',
].join('\n');

describe('records of an earlier shape', () => {
  it('reads a verify record written before respaldo verify existed as one of today', () => {
    const parsed = parseRecord(legacy);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.record).toEqual({
      schema: 'respaldo/v1',
      type: 'verify',
      host: 'web01',
      seq: 7,
      prev: 'sha256:' + 'a'.repeat(64),
      at: '2026-11-20T03:00:05.000Z',
      repository: 'docs',
      kind: 'files',
      trigger: 'scheduled',
      started: '2026-11-20T03:00:01.000Z',
      finished: '2026-11-20T03:00:05.000Z',
      reason: 'before-copy',
      target: 'secondary',
      read: { data: 'all', files: 3, bytes: 100 },
      snapshots: [{ id: '20261120T030000Z', location: 'web01/docs/snapshots/20261120T030000Z', digest: 'sha256:' + 'b'.repeat(64), manifest: 'sha256:' + 'c'.repeat(64), result: 'failed', problems: 1 }],
      result: 'failed',
      problems: [{ snapshot: '20261120T030000Z', path: 'data/etc/a.txt', problem: "its bytes differ from the manifest's" }],
    });
  });

  it('still refuses a record that is neither shape, naming the field of today', () => {
    const parsed = parseRecord(legacy.replace('result: failed', 'result: maybe'));
    expect(parsed).toMatchObject({ ok: false, error: expect.stringMatching(/^field /) });
    expect(parseRecord(legacy.replace('kind: files\n', 'kind: files\nextra: 1\n')).ok).toBe(false);
  });
});

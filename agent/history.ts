/** What the host's own records say about each repository: the last good backup and the last failure. */
import type { RecordStore } from './records.js';

export interface RepositoryHistory {
  /** `unchanged`: nothing had changed, so the backup is an earlier snapshot recorded again. */
  lastGood: { started: Date; snapshot: string; seq: number; bytes: number; unchanged: boolean } | undefined;
  /** The newest failure of a backup, when it is newer than the last good backup (a failed copy to CSC is not one: status shows those as pending copies). */
  failing: { at: Date; seq: number; cause: string } | undefined;
}

/** Scans the host's records newest first, stopping once every repository has a last good backup. */
export async function readHistory(records: RecordStore, names: string[]): Promise<Map<string, RepositoryHistory>> {
  const out = new Map<string, RepositoryHistory>(names.map((n) => [n, { lastGood: undefined, failing: undefined }]));
  let open = names.length;
  for (const file of await records.list()) {
    if (open === 0) break;
    if (file.type !== 'backup' && file.type !== 'failure') continue;
    const record = await records.read(file);
    if (!record || (record.type !== 'backup' && record.type !== 'failure') || !record.repository) continue;
    const h = out.get(record.repository);
    if (!h || h.lastGood) continue;
    if (record.type === 'backup') {
      h.lastGood = { started: new Date(record.started), snapshot: record.snapshot.id, seq: record.seq, bytes: record.size.bytes, unchanged: record.unchanged === true };
      open--;
    } else if (!h.failing && record.stage !== 'copy') h.failing = { at: new Date(record.at), seq: record.seq, cause: record.cause };
  }
  return out;
}

/**
 * Loads a records folder for the site and checks it with the same chain rule as the agent
 * (schemas/chain.ts). Records that fail are kept and marked, never dropped.
 */
import fs from 'node:fs';
import { resolve } from 'node:path';
import { verifyRecordsFolder, type FolderReport } from '../../schemas/chain.js';

export type RecordsView = FolderReport & { dir: string };

export function loadRecords(dir: string): RecordsView {
  const root = resolve(dir);
  return { ...verifyRecordsFolder(root, fs), dir: root };
}

/** One line about a record, for lists. */
export function summarize(record: FolderReport['reports'][number]['records'][number]['record']): string {
  if (!record) return '';
  switch (record.type) {
    case 'backup':
      return `${record.repository} (${record.kind}): ${record.size.files} archivos, ${record.size.bytes} bytes; verificación: ${record.verification.level}`;
    case 'failure':
      return `${record.repository ?? 'ejecución'}: ${record.cause}`;
    case 'enrolment':
      return `llave ${record.key.fingerprint}`;
    default:
      return 'repository' in record ? String(record.repository) : '';
  }
}

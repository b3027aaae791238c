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

/** Whether JAA approved the repository (clause 4.1.1): its request, or a visible mark when none did. */
function requested(request: string | undefined): string {
  if (!request) return '';
  return request === 'unrequested' ? '; SIN SOLICITUD / unrequested' : `; solicitud / request ${request}`;
}

/** One line about a record, for lists. */
export function summarize(record: FolderReport['reports'][number]['records'][number]['record']): string {
  if (!record) return '';
  switch (record.type) {
    case 'backup':
      return `${record.repository} (${record.kind}): ${record.size.files} archivos, ${record.size.bytes} bytes; verificación: ${record.verification.level}${requested(record.request)}`;
    case 'failure':
      return `${record.repository ?? 'ejecución'}: ${record.cause}${requested(record.request)}`;
    case 'enrolment':
      return `llave ${record.key.fingerprint}`;
    default:
      return 'repository' in record ? String(record.repository) : '';
  }
}

import { describe, expect, it } from 'vitest';
import type { FolderReport, RecordStatus } from '../../schemas/chain.js';
import { buildModel, formPages } from './model.js';
import { formPage, hostPage, integrityPage, panel, recordsPage, searchIndex } from './render.js';

const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
const EVIL = '<script>alert(1)</script><img src=x onerror=alert(2)>';

/** A genuine failure record whose cause is markup, and a host folder whose name is markup. */
function folder(): FolderReport {
  const at = '2026-11-24T09:00:00.000Z';
  const record = { schema: 'respaldo/v1', type: 'failure', host: 'web01', seq: 2, prev: digest(1), at, repository: 'db', kind: 'database', trigger: 'manual', operator: EVIL, stage: 'source', cause: EVIL, hint: EVIL };
  const status: RecordStatus = { path: 'hosts/web01/2026/00000002-failure.yaml', seq: 2, type: 'failure', at, prev: digest(1), digest: digest(2), bytes: Buffer.from(`cause: ${EVIL}\n`), record: record as never, signer: 'SHA256:x', genuine: true, problems: [] };
  const evilHost = `x"><img src=x onerror=alert(3)>`;
  return {
    reports: [
      { host: 'web01', records: [status], head: { seq: 2, digest: digest(2) }, problems: [{ path: 'hosts/web01', seq: 1, code: 'deleted', severity: 'error', message: 'record seq 1 is missing' }] },
      { host: evilHost, records: [], head: undefined, problems: [{ path: `hosts/${evilHost}/f`, code: 'unexpected-file', severity: 'error', message: 'not a record' }] },
    ],
    policyProblems: [],
    total: 1,
    broken: 0,
    errors: 2,
  };
}

describe('what a record says is shown, never run', () => {
  it('markup in a record field or a folder name is escaped on every page that shows it', () => {
    const model = buildModel({ folder: folder(), trust: undefined, procedure: undefined, recordsDir: '/r', now: new Date('2026-11-25T00:00:00Z'), timeZone: 'America/Mexico_City' });
    // The folder with a markup name gets no pages of its own, but its problem is listed.
    expect(model.hosts.map((h) => h.host)).toEqual(['web01']);
    const forms = formPages(model);
    const dse05 = forms.get('dse-05')!;
    const pages = [
      integrityPage(model, 'integrity.html'),
      panel(model, 'index.html'),
      hostPage(model, 'hosts/web01.html', model.hosts[0]!),
      recordsPage(model, 'records/web01/1.html', model.hosts[0]!, 1),
      ...dse05.map((p) => formPage(model, `forms/dse-05/${p.period.key}.html`, p, dse05)),
    ];
    for (const html of pages) {
      expect(html).not.toContain('<script>');
      expect(html).not.toContain('<img');
    }
    expect(pages.join('')).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(pages[0]).toContain('x&quot;&gt;&lt;img src=x onerror=alert(3)&gt;');
    // The record after the deleted one does not claim a link it does not have.
    expect(pages[3]).toContain('no. 1, which prev names, is missing');
    expect(searchIndex(model)).not.toContain('</script');
  });
});

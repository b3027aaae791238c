/**
 * The demo as `npm start` runs it, and the site it builds: every record listed, genuine or
 * not, from the records folder alone.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { inodeOf, respaldo, ROOT, tempDir } from './helpers.js';

/** The records on a host's record page: seq, genuine, text. */
function rows(html: string): { seq: number; genuine: boolean; text: string }[] {
  return [...html.matchAll(/<article class="record[^"]*" id="[^"]+" data-seq="(\d+)" data-genuine="(true|false)">([\s\S]*?)<\/article>/g)].map((m) => ({ seq: Number(m[1]), genuine: m[2] === 'true', text: m[3]!.replace(/<[^>]+>/g, ' ') }));
}

describe('demo and site', () => {
  const dir = join(tempDir(), 'demo');

  it('npm start\'s demo backs up, changes, backs up again, verifies and builds the site', async () => {
    const r = await respaldo(['demo', '--dir', dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('22 record(s): 22 genuine, 0 broken');
    expect(r.stdout).toContain('Where to look:');
    // The second snapshot of the uploads shares every file with the first: nothing changed there.
    const snaps = readdirSync(join(dir, 'target/demo-web01/uploads/snapshots')).sort();
    expect(snaps).toHaveLength(2);
    const photo = (id: string) => join(dir, 'target/demo-web01/uploads/snapshots', id, 'data', dir, 'sources/uploads/images/foto-01.jpg');
    expect(inodeOf(photo(snaps[1]!))).toBe(inodeOf(photo(snaps[0]!)));
    // Each run: four backups (seq 2–5, then 10–13), then their copies at CSC (6–9; on the second
    // run each copy follows the re-check of the newest copy already there, 14–21); then the restore (22).
    const year = readdirSync(join(dir, 'records/hosts/demo-web01'))[0]!;
    const names = readdirSync(join(dir, 'records/hosts/demo-web01', year)).filter((n) => n.endsWith('.yaml'));
    const four = (type: string) => Array(4).fill(type);
    expect(names.sort().map((n) => n.slice(9, -5))).toEqual(['enrolment', ...four('backup'), ...four('copy'), ...four('backup'), ...four('verify,copy').flatMap((t) => t.split(',')), 'restore']);
    // The manual run is logged as manual.
    expect(readFileSync(join(dir, 'records/hosts/demo-web01', year, '00000010-backup.yaml'), 'utf8')).toContain('trigger: manual');
    // Every snapshot is at CSC, the same files.
    expect(readdirSync(join(dir, 'csc/demo-web01/uploads/snapshots')).sort()).toEqual(snaps);
    // The document deleted by mistake is back, at its original path, and the restore is recorded.
    expect(readFileSync(join(dir, 'restored', dir, 'sources/uploads/documentos/oficio-5.pdf')).equals(readFileSync(join(dir, 'target/demo-web01/uploads/snapshots', snaps[0]!, 'data', dir, 'sources/uploads/documentos/oficio-5.pdf')))).toBe(true);
    expect(parse(readFileSync(join(dir, 'records/hosts/demo-web01', year, '00000022-restore.yaml'), 'utf8'))).toMatchObject({ repository: 'uploads', reason: 'deleted-by-mistake', source_copy: 'primary', result: 'ok', request: expect.stringMatching(/^REQ-\d{4}-0004$/), trigger: 'scheduled' });
    // Three repositories were requested and approved with JAA's signed commits; the fourth is the sysadmin's own.
    const backups = names.filter((n) => n.endsWith('-backup.yaml')).map((n) => parse(readFileSync(join(dir, 'records/hosts/demo-web01', year, n), 'utf8')));
    expect(Object.fromEntries(backups.map((b) => [b.repository, b.request]))).toEqual({ 'server-config': 'unrequested', portal: expect.stringMatching(/-0001$/), uploads: expect.stringMatching(/-0002$/), 'portal-db': expect.stringMatching(/-0003$/) });
    expect(r.stdout).toContain('summary: 22 records, 22 genuine, 0 broken; hosts: 1 intact, 0 broken; approvals: 4 valid, 0 invalid; policy changes ignored: 0; checkpoints violated: 0');
    // The auditor's own script agrees.
    const audit = execFileSync('bash', [join(ROOT, 'tools/audit.sh'), join(dir, 'records')], { encoding: 'utf8' });
    expect(audit.trim().split('\n').at(-1)).toBe('summary: 22 records, 22 genuine, 0 broken; hosts: 1 intact, 0 broken; approvals: 4 valid, 0 invalid; policy changes ignored: 0; checkpoints violated: 0');
    // The SQLite database is backed up and test-restored (500 rows).
    const db = parse(readFileSync(join(dir, 'records/hosts/demo-web01', year, '00000013-backup.yaml'), 'utf8'));
    expect(db).toMatchObject({ repository: 'portal-db', kind: 'database', verification: { level: 'restore', restore: { result: 'ok' } }, database: { engine: 'sqlite', databases: [{ name: 'portal.db', rows: 500 }] } });
    // The record the demo points at verifies with OpenSSH alone.
    const record = join(dir, 'records/hosts/demo-web01', year, '00000002-backup.yaml');
    execFileSync('ssh-keygen', ['-Y', 'verify', '-f', join(dir, 'records/policy/allowed_signers'), '-I', 'demo-web01', '-n', 'respaldo-record', '-s', `${record}.sig`], { input: readFileSync(record) });

    const html = readFileSync(join(dir, 'site/index.html'), 'utf8');
    expect(html).toContain('data-integrity="intact"');
    expect(html).not.toContain('class="banner"');
    expect(html).toContain('<strong>22</strong><span lang="es">registros íntegros</span>');
    expect(html).toMatch(/data-repo="demo-web01\/server-config" data-state="unrequested"/);
    const list = rows(readFileSync(join(dir, 'site/records/demo-web01/1.html'), 'utf8'));
    expect(list.map((row) => row.seq)).toEqual(Array.from({ length: 22 }, (_, i) => i + 1));
    expect(list.every((row) => row.genuine)).toBe(true);
    expect(list.find((row) => row.seq === 4)!.text).toMatch(/repository\s+uploads[\s\S]*size\.files\s+17/);
  });

  it('marks a tampered record and says so on the page instead of dropping it', async () => {
    const records = join(tempDir(), 'records');
    execFileSync('cp', ['-a', join(dir, 'records'), records]);
    const year = readdirSync(join(records, 'hosts/demo-web01'))[0]!;
    const file = join(records, 'hosts/demo-web01', year, '00000003-backup.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('kind: source', 'kind: files'));
    const out = join(tempDir(), 'site');
    const built = await respaldo(['site', 'build', '--records', records, '--out', out, '--cache', join(tempDir(), 'cache')]);
    expect(built.code, built.stderr).toBe(0);
    expect(existsSync(join(out, 'index.html'))).toBe(true);
    expect(readFileSync(join(out, 'index.html'), 'utf8')).toContain('data-integrity="broken"');
    const html = readFileSync(join(out, 'records/demo-web01/1.html'), 'utf8');
    const list = rows(html);
    expect(list).toHaveLength(22);
    expect(list.find((row) => row.seq === 3)).toMatchObject({ genuine: false });
    expect(list.find((row) => row.seq === 3)!.text).toContain('edited');
    expect(list.find((row) => row.seq === 4)!.text).toContain('broken-link');
    expect(list.find((row) => row.seq === 2)!.genuine).toBe(true);
  });
});

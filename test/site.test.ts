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

function buildSite(records: string, out: string): void {
  execFileSync(join(ROOT, 'node_modules/.bin/astro'), ['build', '--silent'], {
    cwd: ROOT,
    env: { ...process.env, RESPALDO_RECORDS: records, RESPALDO_SITE_OUT: out, ASTRO_TELEMETRY_DISABLED: '1' },
    stdio: 'pipe',
  });
}

/** The rows of the records table: seq, type, status cell text. */
function rows(html: string): { seq: number; genuine: boolean; text: string }[] {
  return [...html.matchAll(/<tr data-seq="(\d+)" data-genuine="(true|false)"[^>]*>([\s\S]*?)<\/tr>/g)].map((m) => ({ seq: Number(m[1]), genuine: m[2] === 'true', text: m[3]!.replace(/<[^>]+>/g, ' ') }));
}

describe('demo and site', () => {
  const dir = join(tempDir(), 'demo');

  it('npm start\'s demo backs up, changes, backs up again, verifies and builds the site', async () => {
    const r = await respaldo(['demo', '--dir', dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('9 record(s): 9 genuine, 0 broken');
    expect(r.stdout).toContain('Where to look:');
    // The second snapshot of the uploads shares every file with the first: nothing changed there.
    const snaps = readdirSync(join(dir, 'target/demo-web01/uploads/snapshots')).sort();
    expect(snaps).toHaveLength(2);
    const photo = (id: string) => join(dir, 'target/demo-web01/uploads/snapshots', id, 'data', dir, 'sources/uploads/images/foto-01.jpg');
    expect(inodeOf(photo(snaps[1]!))).toBe(inodeOf(photo(snaps[0]!)));
    // The manual run is logged as manual.
    const year = readdirSync(join(dir, 'records/hosts/demo-web01'))[0]!;
    expect(readFileSync(join(dir, 'records/hosts/demo-web01', year, '00000006-backup.yaml'), 'utf8')).toContain('trigger: manual');
    // The SQLite database is backed up and test-restored (500 rows).
    const db = parse(readFileSync(join(dir, 'records/hosts/demo-web01', year, '00000009-backup.yaml'), 'utf8'));
    expect(db).toMatchObject({ repository: 'portal-db', kind: 'database', verification: { level: 'restore', restore: { result: 'ok' } }, database: { engine: 'sqlite', databases: [{ name: 'portal.db', rows: 500 }] } });
    // The record the demo points at verifies with OpenSSH alone.
    const record = join(dir, 'records/hosts/demo-web01', year, '00000002-backup.yaml');
    execFileSync('ssh-keygen', ['-Y', 'verify', '-f', join(dir, 'records/policy/allowed_signers'), '-I', 'demo-web01', '-n', 'respaldo-record', '-s', `${record}.sig`], { input: readFileSync(record) });

    const html = readFileSync(join(dir, 'site/index.html'), 'utf8');
    expect(html).toContain('data-integrity="intact"');
    expect(html).toContain('9 registros, todos con firma válida y cadena íntegra.');
    const list = rows(html);
    expect(list.map((row) => row.seq)).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1]);
    expect(list.every((row) => row.genuine)).toBe(true);
    expect(list.find((row) => row.seq === 4)!.text).toMatch(/uploads \(files\): 17 archivos/);
  });

  it('marks a tampered record and says so on the page instead of dropping it', () => {
    const records = join(tempDir(), 'records');
    execFileSync('cp', ['-a', join(dir, 'records'), records]);
    const year = readdirSync(join(records, 'hosts/demo-web01'))[0]!;
    const file = join(records, 'hosts/demo-web01', year, '00000003-backup.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('kind: source', 'kind: files'));
    const out = join(tempDir(), 'site');
    buildSite(records, out);
    expect(existsSync(join(out, 'index.html'))).toBe(true);
    const html = readFileSync(join(out, 'index.html'), 'utf8');
    expect(html).toContain('data-integrity="broken"');
    const list = rows(html);
    expect(list).toHaveLength(9);
    expect(list.find((row) => row.seq === 3)).toMatchObject({ genuine: false });
    expect(list.find((row) => row.seq === 3)!.text).toContain('edited');
    expect(list.find((row) => row.seq === 4)!.text).toContain('broken-link');
    expect(list.find((row) => row.seq === 2)!.genuine).toBe(true);
  });
});

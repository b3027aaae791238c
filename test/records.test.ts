/**
 * The records, checked the way an auditor would: with OpenSSH's own ssh-keygen, and with
 * `respaldo records verify` after deliberate tampering.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { digestOf, RECORD_NAMESPACE } from '../schemas/record.js';
import { signSshsig } from '../schemas/sshsig.js';
import { deployment, respaldo, tempDir, writeTree, type Deployment } from './helpers.js';

function sshVerify(records: string, host: string, file: string): { code: number | null; out: string } {
  const r = spawnSync('ssh-keygen', ['-Y', 'verify', '-f', join(records, 'policy/allowed_signers'), '-I', host, '-n', RECORD_NAMESPACE, '-s', `${join(records, file)}.sig`], {
    input: readFileSync(join(records, file)),
  });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** A copy of a records folder to tamper with. */
function copyRecords(d: Deployment): string {
  const dir = join(tempDir(), 'records');
  execFileSync('cp', ['-a', d.records, dir]);
  return dir;
}

async function verify(dir: string) {
  const r = await respaldo(['records', 'verify', dir]);
  const json = await respaldo(['records', 'verify', dir, '--json']);
  return { ...r, data: JSON.parse(json.stdout.trim().split('\n').at(-1)!).data };
}

describe('records', () => {
  let d: Deployment;
  beforeAll(async () => {
    const src = tempDir();
    writeTree(src, { 'a.txt': 'uno\n', 'b.txt': 'dos\n' });
    d = await deployment([
      { name: 'docs', paths: [src] },
      { name: 'missing', paths: [join(src, 'no-such-folder')] },
    ]);
    // backups, a failure among them, and a second run: every kind of record the agent writes today.
    expect((await d.run('run', '--all')).code).toBe(3);
    writeFileSync(join(src, 'a.txt'), 'uno y medio\n');
    const second = await d.run('run', '--repo', 'docs', '--manual');
    expect(second.code, second.stderr).toBe(0);
  });

  it('ssh-keygen -Y verify accepts every record the agent writes', () => {
    const files = d.recordFiles();
    expect(files.map((f) => f.split('-').pop())).toEqual(['enrolment.yaml', 'backup.yaml', 'failure.yaml', 'backup.yaml']);
    for (const file of files) {
      const r = sshVerify(d.records, d.host, file);
      expect(r.code, `${file}: ${r.out}`).toBe(0);
      expect(r.out).toContain(`Good "${RECORD_NAMESPACE}" signature for ${d.host}`);
    }
  });

  it('every record starts with the same six plain lines and chains to the previous file', () => {
    let prev: string | null = null;
    d.recordFiles().forEach((file, i) => {
      const bytes = readFileSync(join(d.records, file));
      const lines = bytes.toString().split('\n').slice(0, 6);
      expect(lines[0]).toBe('schema: respaldo/v1');
      expect(lines[1]).toMatch(/^type: (enrolment|backup|failure)$/);
      expect(lines[2]).toBe(`host: ${d.host}`);
      expect(lines[3]).toBe(`seq: ${i + 1}`);
      expect(lines[4]).toBe(`prev: ${prev ?? 'null'}`);
      expect(lines[5]).toMatch(/^at: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      prev = digestOf(bytes);
    });
  });

  it('records verify passes an untouched folder', async () => {
    const r = await verify(d.records);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('4 record(s): 4 genuine, 0 broken');
  });

  it('reports an edited byte', async () => {
    const dir = copyRecords(d);
    const file = d.recordFiles()[1]!;
    const text = readFileSync(join(dir, file), 'utf8');
    writeFileSync(join(dir, file), text.replace(/files: (\d+)/, (_, n) => `files: ${Number(n) + 1}`));
    const r = await verify(dir);
    expect(r.code).toBe(3);
    expect(r.stdout).toContain(`${file}: edited: the record was changed after it was signed`);
    expect(r.stdout).toMatch(new RegExp(`${d.recordFiles()[2]!.replace(/\./g, '\\.')}: broken-link: prev does not match record seq 2`));
  });

  it('reports a deleted middle record', async () => {
    const dir = copyRecords(d);
    const file = d.recordFiles()[2]!;
    rmSync(join(dir, file));
    rmSync(join(dir, `${file}.sig`));
    const r = await verify(dir);
    expect(r.code).toBe(3);
    expect(r.stdout).toContain('deleted: record seq 3 is missing');
  });

  it('reports reordered records', async () => {
    const dir = copyRecords(d);
    const [, , third, fourth] = d.recordFiles();
    // Swap the names of records 3 and 4 (each keeps its own signature).
    const tmp = join(dir, 'swap');
    renameSync(join(dir, third!), tmp);
    renameSync(join(dir, fourth!), join(dir, third!.replace('failure', 'backup')));
    renameSync(tmp, join(dir, fourth!.replace('backup', 'failure')));
    renameSync(join(dir, `${third!}.sig`), `${tmp}.sig`);
    renameSync(join(dir, `${fourth!}.sig`), join(dir, `${third!.replace('failure', 'backup')}.sig`));
    renameSync(`${tmp}.sig`, join(dir, `${fourth!.replace('backup', 'failure')}.sig`));
    const r = await verify(dir);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/reordered: file name says seq 3 \(backup\) but the record says seq 4 \(backup\)/);
  });

  it('reports a fork: a second record with the same seq, even when properly signed', async () => {
    const dir = copyRecords(d);
    const file = d.recordFiles()[3]!;
    // The host's own key signs a different record 4: only the chain can tell.
    const forged = readFileSync(join(dir, file), 'utf8').replace('type: backup', 'type: failure');
    const key = createPrivateKey(readFileSync(join(d.root, 'host.key')));
    const forkPath = file.replace('backup', 'failure');
    writeFileSync(join(dir, forkPath), forged);
    writeFileSync(join(dir, `${forkPath}.sig`), signSshsig(Buffer.from(forged), key, RECORD_NAMESPACE));
    const r = await verify(dir);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/forked: 2 records claim seq 4/);
  });

  it('reports an unsigned record and a signer that is not in allowed_signers', async () => {
    const dir = copyRecords(d);
    const [, second, third] = d.recordFiles();
    rmSync(join(dir, `${second!}.sig`));
    const stranger = generateKeyPairSync('ed25519').privateKey;
    writeFileSync(join(dir, `${third!}.sig`), signSshsig(readFileSync(join(dir, third!)), stranger, RECORD_NAMESPACE));
    const r = await verify(dir);
    expect(r.code).toBe(3);
    expect(r.stdout).toContain(`${second}: unsigned: no signature`);
    expect(r.stdout).toMatch(new RegExp(`${third!.replace(/\./g, '\\.')}: unknown-signer: signed by key SHA256:\\S+, which allowed_signers does not list for "web01"`));
    // ssh-keygen agrees.
    expect(sshVerify(dir, d.host, third!).code).not.toBe(0);
    // And the JSON names the same problems.
    const codes = r.data.hosts[0].problems.map((p: { code: string }) => p.code);
    expect(codes).toEqual(expect.arrayContaining(['unsigned', 'unknown-signer']));
  });

  it('reports records when allowed_signers no longer lists the host', async () => {
    const dir = copyRecords(d);
    writeFileSync(join(dir, 'policy/allowed_signers'), '# emptied\n');
    const r = await verify(dir);
    expect(r.code).toBe(3);
    expect(r.stdout).toContain('allowed_signers has no line for "web01"');
  });

  it('reports a host whose whole folder was deleted, and a link in place of a record', async () => {
    const dir = copyRecords(d);
    rmSync(join(dir, 'hosts', d.host), { recursive: true });
    const r = await verify(dir);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/hosts\/web01: deleted: allowed_signers trusts host "web01" \(line \d+\) but it has no records/);

    const linked = copyRecords(d);
    const file = d.recordFiles()[1]!;
    const elsewhere = join(tempDir(), 'copy.yaml');
    renameSync(join(linked, file), elsewhere);
    symlinkSync(elsewhere, join(linked, file));
    const l = await verify(linked);
    expect(l.code).toBe(3);
    expect(l.stdout).toContain(`${file}: unexpected-file: not a regular file`);
  });

  it('reports an enrolment re-signed by another key', async () => {
    const dir = copyRecords(d);
    const first = d.recordFiles()[0]!;
    const other = generateKeyPairSync('ed25519').privateKey;
    writeFileSync(join(dir, `${first}.sig`), signSshsig(readFileSync(join(dir, first)), other, RECORD_NAMESPACE));
    const r = await verify(dir);
    expect(r.code).toBe(3);
    expect(r.stdout).toContain(`${first}: unknown-signer`);
  });
});

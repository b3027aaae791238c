/** `respaldo init`: the host key, its public line for JAA, and the enrolment record. */
import { appendFileSync, chmodSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { deployment, respaldo, tempDir, writeTree } from './helpers.js';

describe('init', () => {
  it('creates a 0600 PKCS8 Ed25519 key, the allowed_signers line and the enrolment record', async () => {
    const d = await deployment([{ name: 'app', paths: ['/nonexistent'] }], { enrol: false });
    const r = await d.run('init');
    expect(r.code, r.stderr).toBe(0);
    const key = join(d.root, 'host.key');
    expect(statSync(key).mode & 0o777).toBe(0o600);
    expect(readFileSync(key, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    const line = readFileSync(`${key}.pub`, 'utf8').trim();
    expect(line).toMatch(/^web01 namespaces="respaldo-record" ssh-ed25519 AAAA[A-Za-z0-9+/=]+ respaldo agent web01$/);
    expect(r.stdout).toContain(line);
    expect(r.stdout).toContain('For JAA: add this line to records/policy/allowed_signers');
    const files = d.recordFiles();
    expect(files).toHaveLength(1);
    const enrolment = parse(readFileSync(join(d.records, files[0]!), 'utf8'));
    expect(enrolment).toMatchObject({ type: 'enrolment', seq: 1, prev: null, host: 'web01', key: { public: line.split(' ').slice(2, 4).join(' ') } });
  });

  it('keeps an existing key and does not enrol twice; --force replaces the key with a new enrolment', async () => {
    const d = await deployment([{ name: 'app', paths: ['/nonexistent'] }]);
    const key = join(d.root, 'host.key');
    const before = readFileSync(key, 'utf8');
    const again = await d.run('init');
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('already enrolled');
    expect(readFileSync(key, 'utf8')).toBe(before);
    expect(d.recordFiles()).toHaveLength(1);

    const forced = await d.run('init', '--force');
    expect(forced.code).toBe(0);
    expect(readFileSync(key, 'utf8')).not.toBe(before);
    const files = d.recordFiles();
    expect(files).toHaveLength(2);
    const first = parse(readFileSync(join(d.records, files[0]!), 'utf8'));
    const second = parse(readFileSync(join(d.records, files[1]!), 'utf8'));
    expect(second).toMatchObject({ type: 'enrolment', seq: 2, replaces: { fingerprint: first.key.fingerprint } });

    // Until JAA trusts the new key, its records are not genuine; afterwards the whole chain is.
    const untrusted = await respaldo(['records', 'verify', d.records]);
    expect(untrusted.code).toBe(3);
    expect(untrusted.stdout).toContain(`${files[1]}: unknown-signer`);
    appendFileSync(join(d.records, 'policy/allowed_signers'), readFileSync(`${key}.pub`));
    const trusted = await respaldo(['records', 'verify', d.records]);
    expect(trusted.code, trusted.stdout).toBe(0);
  });

  it('refuses a key that others can read, and a run before init', async () => {
    const src = tempDir();
    writeTree(src, { 'a.txt': 'a' });
    const fresh = await deployment([{ name: 'app', paths: [src] }], { enrol: false });
    const early = await fresh.run('run');
    expect(early.code).toBe(2);
    expect(early.stderr).toContain('run "respaldo init"');

    const d = await deployment([{ name: 'app', paths: [src] }]);
    chmodSync(join(d.root, 'host.key'), 0o644);
    const r = await d.run('run', '--all');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('can be read by other users');
    expect(r.stderr).toContain(`chmod 600 ${join(d.root, 'host.key')}`);
  });
});

import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fingerprint, keyFromBlob, publicKeyBlob, publicKeyLine, signSshsig, verifySshsig } from './sshsig.js';

const dir = mkdtempSync(join(tmpdir(), 'sshsig-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('SSHSIG with node:crypto', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const message = Buffer.from('schema: respaldo/v1\ntype: backup\nbytes: "ñ"\n');

  it('makes signatures that ssh-keygen -Y verify accepts, and only for the signed bytes and namespace', () => {
    writeFileSync(join(dir, 'f'), message);
    writeFileSync(join(dir, 'f.sig'), signSshsig(message, privateKey, 'respaldo-record'));
    writeFileSync(join(dir, 'allowed'), `web01 ${publicKeyLine(publicKey)}\n`);
    const verify = (input: Buffer, ns: string) =>
      spawnSync('ssh-keygen', ['-Y', 'verify', '-f', join(dir, 'allowed'), '-I', 'web01', '-n', ns, '-s', join(dir, 'f.sig')], { input });
    expect(verify(message, 'respaldo-record').status).toBe(0);
    expect(verify(Buffer.concat([message, Buffer.from('x')]), 'respaldo-record').status).not.toBe(0);
    expect(verify(message, 'git').status).not.toBe(0);
  });

  it('verifies signatures made by ssh-keygen -Y sign, and reports the key', () => {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', '', '-f', join(dir, 'k')]);
    writeFileSync(join(dir, 'g'), message);
    execFileSync('ssh-keygen', ['-Y', 'sign', '-q', '-f', join(dir, 'k'), '-n', 'respaldo-record', join(dir, 'g')]);
    const armored = readFileSync(join(dir, 'g.sig'), 'utf8');
    const result = verifySshsig(message, armored, 'respaldo-record');
    expect(result.ok).toBe(true);
    const fp = execFileSync('ssh-keygen', ['-l', '-f', join(dir, 'k.pub')], { encoding: 'utf8' }).split(' ')[1];
    expect(result.ok && result.fingerprint).toBe(fp);
    expect(verifySshsig(Buffer.from('other'), armored, 'respaldo-record')).toMatchObject({ ok: false, reason: expect.stringContaining('changed after signing') });
    expect(verifySshsig(message, armored, 'git')).toMatchObject({ ok: false, reason: expect.stringContaining('namespace') });
    expect(verifySshsig(message, 'garbage', 'git')).toMatchObject({ ok: false, reason: 'not an armored SSH signature' });
  });

  it('prints public lines and fingerprints as OpenSSH does', () => {
    writeFileSync(join(dir, 'node.pub'), `${publicKeyLine(publicKey)} test\n`);
    const fp = execFileSync('ssh-keygen', ['-l', '-f', join(dir, 'node.pub')], { encoding: 'utf8' }).split(' ')[1];
    expect(fingerprint(publicKeyBlob(publicKey))).toBe(fp);
    expect(keyFromBlob(publicKeyBlob(publicKey)).export({ format: 'jwk' })).toEqual(publicKey.export({ format: 'jwk' }));
  });
});

import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { checkSigner, parseAllowedSigners, principalMatches } from './allowed-signers.js';
import { publicKeyBlob, publicKeyLine } from './sshsig.js';

const key = () => {
  const { publicKey } = generateKeyPairSync('ed25519');
  return { line: publicKeyLine(publicKey), blob: publicKeyBlob(publicKey) };
};

describe('allowed_signers', () => {
  it('parses principals, options and comments as ssh-keygen(1) describes them', () => {
    const a = key();
    const file = parseAllowedSigners(`# comment\n\nweb01,web02 namespaces="respaldo-record,git",valid-after="20260101",valid-before="20270101Z" ${a.line} agent of web01\n`);
    expect(file.errors).toEqual([]);
    const s = file.signers[0]!;
    expect(s).toMatchObject({ line: 3, principals: ['web01', 'web02'], namespaces: ['respaldo-record', 'git'], comment: 'agent of web01', keyType: 'ssh-ed25519' });
    expect(s.validBefore).toEqual(new Date('2027-01-01T00:00:00Z'));
  });

  it('reports malformed lines with their number', () => {
    const file = parseAllowedSigners('web01 not-a-key\nweb02 valid-after="tomorrow" ssh-ed25519 AAAA\n');
    expect(file.errors.map((e) => e.line)).toEqual([1, 2]);
    expect(file.errors[1]!.message).toContain('valid-after="tomorrow"');
  });

  it('matches principals with wildcards and negations', () => {
    expect(principalMatches('web01', ['web*'])).toBe(true);
    expect(principalMatches('web01', ['web0?'])).toBe(true);
    expect(principalMatches('db01', ['web*'])).toBe(false);
    expect(principalMatches('web01', ['web*', '!web01'])).toBe(false);
  });

  it('checks principal, key, namespace and validity at the record time', () => {
    const a = key();
    const b = key();
    const file = parseAllowedSigners(`web01 namespaces="respaldo-record",valid-before="20270101Z" ${a.line}\njaa namespaces="git" ${b.line}\n`);
    const at = new Date('2026-11-22T00:00:00Z');
    expect(checkSigner(file, { principal: 'web01', namespace: 'respaldo-record', key: a.blob, at }).ok).toBe(true);
    expect(checkSigner(file, { principal: 'web01', namespace: 'respaldo-record', key: b.blob, at })).toMatchObject({ ok: false, reason: expect.stringContaining('does not list for "web01"') });
    expect(checkSigner(file, { principal: 'web02', namespace: 'respaldo-record', key: a.blob, at })).toMatchObject({ ok: false, reason: expect.stringContaining('no line for "web02"') });
    expect(checkSigner(file, { principal: 'jaa', namespace: 'respaldo-record', key: b.blob, at })).toMatchObject({ ok: false, reason: expect.stringContaining('namespace') });
    // A record written after the key expired is not vouched for; one written before still is.
    expect(checkSigner(file, { principal: 'web01', namespace: 'respaldo-record', key: a.blob, at: new Date('2027-02-01T00:00:00Z') })).toMatchObject({ ok: false, reason: expect.stringContaining('not valid at') });
    // To the second, both ends included, as ssh-keygen -Overify-time judges it (tools/audit.sh uses that).
    expect(checkSigner(file, { principal: 'web01', namespace: 'respaldo-record', key: a.blob, at: new Date('2027-01-01T00:00:00.900Z') }).ok).toBe(true);
    expect(checkSigner(file, { principal: 'web01', namespace: 'respaldo-record', key: a.blob, at: new Date('2027-01-01T00:00:01Z') }).ok).toBe(false);
  });
});

/**
 * The host's Ed25519 signing key: PKCS8 PEM, mode 0600, made by `respaldo init`. It never
 * leaves the host; only its OpenSSH public line goes to JAA for `allowed_signers`.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { RECORD_NAMESPACE } from '../schemas/record.js';
import { fingerprint, publicKeyBlob, publicKeyLine } from '../schemas/sshsig.js';
import { Exit, RespaldoError } from './errors.js';
import { writeFileAtomic } from './fsutil.js';

export interface HostKey {
  privateKey: KeyObject;
  publicLine: string;
  fingerprint: string;
}

function describeKey(privateKey: KeyObject): HostKey {
  const pub = createPublicKey(privateKey);
  return { privateKey, publicLine: publicKeyLine(pub), fingerprint: fingerprint(publicKeyBlob(pub)) };
}

/** The line JAA adds to `records/policy/allowed_signers` so the host's records are trusted. */
export function allowedSignersLine(host: string, key: HostKey): string {
  return `${host} namespaces="${RECORD_NAMESPACE}" ${key.publicLine} respaldo agent ${host}`;
}

export async function loadKey(path: string): Promise<HostKey> {
  let pem: string;
  try {
    const info = await stat(path);
    if ((info.mode & 0o077) !== 0) {
      throw new RespaldoError(`the key ${path} can be read by other users (mode ${(info.mode & 0o777).toString(8)})`, {
        exitCode: Exit.usage,
        hint: `chmod 600 ${path}`,
      });
    }
    pem = await readFile(path, 'utf8');
  } catch (e) {
    if (e instanceof RespaldoError) throw e;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new RespaldoError(`the host key ${path} does not exist`, { exitCode: Exit.usage, hint: 'run "respaldo init" to create it and enrol the host' });
    throw new RespaldoError(`cannot read the host key ${path}: ${(e as Error).message}`, { exitCode: Exit.nothing });
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (e) {
    throw new RespaldoError(`the host key ${path} is not a PEM private key: ${(e as Error).message}`, { exitCode: Exit.usage, hint: 'restore it from your key backup, or make a new one with "respaldo init --force" (then JAA must trust the new public line)' });
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new RespaldoError(`the host key ${path} is ${key.asymmetricKeyType}, not Ed25519`, { exitCode: Exit.usage, hint: 'make an Ed25519 key with "respaldo init --force"' });
  return describeKey(key);
}

/** Creates a new key; refuses to replace an existing one unless `force`. */
export async function createKey(path: string, force: boolean): Promise<HostKey> {
  const { privateKey } = generateKeyPairSync('ed25519');
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' });
  try {
    await writeFileAtomic(path, pem, { mode: 0o600, exclusive: !force });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST')
      throw new RespaldoError(`the host key ${path} already exists`, { exitCode: Exit.usage, hint: 'keep it, or replace it with --force (JAA must then trust the new public line)' });
    throw e;
  }
  return describeKey(privateKey);
}

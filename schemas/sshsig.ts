/**
 * OpenSSH's SSHSIG detached signatures with Ed25519 keys, made and checked with
 * node:crypto alone, byte-compatible with `ssh-keygen -Y sign` and `ssh-keygen -Y verify`.
 * The format is PROTOCOL.sshsig in the OpenSSH sources:
 *
 *     "SSHSIG" | uint32 1 | string publickey | string namespace | string reserved
 *              | string hash_algorithm | string signature
 *
 * and what the key signs is
 *
 *     "SSHSIG" | string namespace | string reserved | string hash_algorithm | string H(message)
 */
import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';

const MAGIC = Buffer.from('SSHSIG');
const HASH = 'sha512';
const KEY_TYPE = 'ssh-ed25519';

function sshString(data: Uint8Array | string): Buffer {
  const bytes = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(bytes.length);
  return Buffer.concat([len, bytes]);
}

class Reader {
  private at = 0;
  constructor(private readonly buf: Buffer) {}
  raw(n: number): Buffer {
    if (this.at + n > this.buf.length) throw new Error('truncated signature');
    const out = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }
  uint32(): number {
    return this.raw(4).readUInt32BE(0);
  }
  string(): Buffer {
    return this.raw(this.uint32());
  }
  done(): boolean {
    return this.at === this.buf.length;
  }
}

/** The SSH wire form of an Ed25519 public key: string "ssh-ed25519" | string key. */
export function publicKeyBlob(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new Error('only Ed25519 keys are supported');
  return Buffer.concat([sshString(KEY_TYPE), sshString(Buffer.from(jwk.x, 'base64url'))]);
}

/** `ssh-ed25519 AAAA…`, the OpenSSH public line without a comment. */
export function publicKeyLine(key: KeyObject): string {
  return `${KEY_TYPE} ${publicKeyBlob(key).toString('base64')}`;
}

/** `SHA256:…`, as `ssh-keygen -l` prints it. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The node:crypto public key of an SSH wire-form Ed25519 blob; throws on other key types. */
export function keyFromBlob(blob: Buffer): KeyObject {
  const r = new Reader(blob);
  const type = r.string().toString();
  if (type !== KEY_TYPE) throw new Error(`unsupported key type ${type}`);
  const raw = r.string();
  if (raw.length !== 32 || !r.done()) throw new Error('malformed ssh-ed25519 key');
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
}

function signedData(namespace: string, message: Uint8Array, hash: string): Buffer {
  return Buffer.concat([MAGIC, sshString(namespace), sshString(''), sshString(hash), sshString(createHash(hash).update(message).digest())]);
}

/** Signs a message; returns the armored signature file's text, as `ssh-keygen -Y sign` writes it. */
export function signSshsig(message: Uint8Array, privateKey: KeyObject, namespace: string): string {
  const signature = sign(null, signedData(namespace, message, HASH), privateKey);
  const version = Buffer.alloc(4);
  version.writeUInt32BE(1);
  const blob = Buffer.concat([
    MAGIC,
    version,
    sshString(publicKeyBlob(createPublicKey(privateKey))),
    sshString(namespace),
    sshString(''),
    sshString(HASH),
    sshString(Buffer.concat([sshString(KEY_TYPE), sshString(signature)])),
  ]);
  const lines = blob.toString('base64').match(/.{1,70}/g) ?? [];
  return `-----BEGIN SSH SIGNATURE-----\n${lines.join('\n')}\n-----END SSH SIGNATURE-----\n`;
}

export type SshsigCheck =
  | { ok: true; publicKey: Buffer; fingerprint: string }
  | { ok: false; reason: string; publicKey?: Buffer; fingerprint?: string };

/**
 * Checks an armored signature over a message: the format, the namespace and the
 * signature itself. Which keys to trust is the caller's business (see allowed-signers.ts);
 * the key that signed is returned either way.
 */
export function verifySshsig(message: Uint8Array, armored: string, namespace: string): SshsigCheck {
  const m = /^-----BEGIN SSH SIGNATURE-----\n([A-Za-z0-9+/=\n]+)-----END SSH SIGNATURE-----\n?$/.exec(armored);
  if (!m) return { ok: false, reason: 'not an armored SSH signature' };
  let publicKey: Buffer;
  try {
    const r = new Reader(Buffer.from(m[1]!.replace(/\n/g, ''), 'base64'));
    if (!r.raw(6).equals(MAGIC)) return { ok: false, reason: 'not an SSHSIG signature' };
    if (r.uint32() !== 1) return { ok: false, reason: 'unsupported SSHSIG version' };
    publicKey = Buffer.from(r.string());
    const ns = r.string().toString();
    r.string(); // reserved
    const hash = r.string().toString();
    const sigBlob = new Reader(r.string());
    if (!r.done()) return { ok: false, reason: 'trailing bytes after the signature' };
    const fp = fingerprint(publicKey);
    if (ns !== namespace) return { ok: false, reason: `signature is for namespace "${ns}", not "${namespace}"`, publicKey, fingerprint: fp };
    if (hash !== 'sha512' && hash !== 'sha256') return { ok: false, reason: `unsupported hash ${hash}`, publicKey, fingerprint: fp };
    if (sigBlob.string().toString() !== KEY_TYPE) return { ok: false, reason: 'only ssh-ed25519 signatures are supported', publicKey, fingerprint: fp };
    const sig = sigBlob.string();
    if (!verify(null, signedData(namespace, message, hash), keyFromBlob(publicKey), sig)) {
      return { ok: false, reason: 'signature does not match the file (it was changed after signing)', publicKey, fingerprint: fp };
    }
    return { ok: true, publicKey, fingerprint: fp };
  } catch (e) {
    return { ok: false, reason: `malformed signature: ${(e as Error).message}` };
  }
}

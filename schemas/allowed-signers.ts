/**
 * OpenSSH's allowed-signers file (ssh-keygen(1), ALLOWED SIGNERS), the trust policy of
 * `records/policy/allowed_signers`: agents under namespace "respaldo-record", approvers
 * under "git". Each line is
 *
 *     principals [options] keytype base64-key [comment]
 *
 * with options `namespaces="a,b"`, `valid-after="YYYYMMDD[HHMM[SS]][Z]"`,
 * `valid-before=…` and `cert-authority`. Validity times are checked against the time a
 * record says it was written, so a key that expired later still vouches for its old records.
 */
import { fingerprint } from './sshsig.js';

export interface AllowedSigner {
  line: number;
  principals: string[];
  namespaces: string[] | undefined;
  validAfter: Date | undefined;
  validBefore: Date | undefined;
  certAuthority: boolean;
  keyType: string;
  key: Buffer;
  fingerprint: string;
  comment: string;
}

export interface AllowedSignersFile {
  signers: AllowedSigner[];
  errors: { line: number; message: string }[];
  /** Keys of `policy/revoked_keys`: never valid, whatever the time (`ssh-keygen -Y verify -r`). */
  revoked?: Buffer[];
}

/** The keys of a revocation file in its plain form, one public key per line (`ssh-keygen -r` reads it too). */
export function parseRevokedKeys(text: string): Buffer[] {
  const out: Buffer[] = [];
  for (const raw of text.split('\n')) {
    const t = tokens(raw.trim());
    const at = t.findIndex((x) => KEY_TYPE_RE.test(x));
    if (!raw.trim().startsWith('#') && at >= 0 && t[at + 1]) out.push(Buffer.from(t[at + 1]!, 'base64'));
  }
  return out;
}

/** Splits on unquoted whitespace, keeping quotes inside tokens (as `namespaces="a,b"`). */
function tokens(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const ch of line) {
    if (ch === '"') quoted = !quoted;
    if (!quoted && /\s/.test(ch)) {
      if (cur) out.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur) out.push(cur);
  return out;
}

function unquote(s: string): string {
  return s.startsWith('"') && s.endsWith('"') ? s.slice(1, -1) : s;
}

/** Splits an option list on commas outside quotes. */
function splitOptions(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const ch of s) {
    if (ch === '"') quoted = !quoted;
    if (ch === ',' && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

const KEY_TYPE_RE = /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)$/;

/** Parses ssh-keygen's validity times: YYYYMMDD[HHMM[SS]] in local time, or UTC with a trailing Z. */
function parseSshTime(text: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2})?)?(Z?)$/.exec(text);
  if (!m) return undefined;
  const [y, mo, d, h = '0', mi = '0', s = '0'] = m.slice(1, 7).map((v) => v ?? undefined) as string[];
  const parts = [Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)] as const;
  return m[7] === 'Z' ? new Date(Date.UTC(...parts)) : new Date(...parts);
}

export function parseAllowedSigners(text: string): AllowedSignersFile {
  const signers: AllowedSigner[] = [];
  const errors: { line: number; message: string }[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    const trimmed = raw.trim();
    if (!trimmed || trimmed.startsWith('#')) return;
    const t = tokens(trimmed);
    const principals = unquote(t.shift() ?? '').split(',').filter(Boolean);
    let optionText = '';
    if (t[0] !== undefined && !KEY_TYPE_RE.test(t[0])) optionText = t.shift()!;
    const keyType = t.shift();
    const keyB64 = t.shift();
    if (!keyType || !KEY_TYPE_RE.test(keyType) || !keyB64) {
      errors.push({ line, message: 'expected "principals [options] keytype base64-key [comment]"' });
      return;
    }
    const entry: AllowedSigner = {
      line,
      principals,
      namespaces: undefined,
      validAfter: undefined,
      validBefore: undefined,
      certAuthority: false,
      keyType,
      key: Buffer.from(keyB64, 'base64'),
      fingerprint: fingerprint(Buffer.from(keyB64, 'base64')),
      comment: t.join(' '),
    };
    for (const opt of optionText ? splitOptions(optionText) : []) {
      const eq = opt.indexOf('=');
      const name = (eq < 0 ? opt : opt.slice(0, eq)).toLowerCase();
      const value = eq < 0 ? '' : unquote(opt.slice(eq + 1));
      if (name === 'cert-authority') entry.certAuthority = true;
      else if (name === 'namespaces') entry.namespaces = value.split(',').filter(Boolean);
      else if (name === 'valid-after' || name === 'valid-before') {
        const when = parseSshTime(value);
        if (!when) errors.push({ line, message: `${name}="${value}" is not a time such as 20261122 or 202611220300Z` });
        else if (name === 'valid-after') entry.validAfter = when;
        else entry.validBefore = when;
      } else errors.push({ line, message: `unknown option "${name}"` });
    }
    signers.push(entry);
  });
  return { signers, errors };
}

/** Patterns as regular expressions, made once each. */
const patterns = new Map<string, RegExp>();

/** OpenSSH's match_pattern: `*` and `?` wildcards. */
function matchPattern(text: string, pattern: string): boolean {
  if (!/[*?]/.test(pattern)) return text === pattern;
  let re = patterns.get(pattern);
  if (!re) patterns.set(pattern, (re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`)));
  return re.test(text);
}

/** OpenSSH's match_pattern_list: a `!pattern` that matches vetoes the whole list. */
export function principalMatches(principal: string, patterns: string[]): boolean {
  let matched = false;
  for (const p of patterns) {
    if (p.startsWith('!')) {
      if (matchPattern(principal, p.slice(1))) return false;
    } else if (matchPattern(principal, p)) matched = true;
  }
  return matched;
}

export type SignerCheck = { ok: true; signer: AllowedSigner } | { ok: false; reason: string };

/**
 * Is `key` allowed to sign for `principal` in `namespace` at time `at`? Mirrors
 * `ssh-keygen -Y verify -I principal -n namespace` with `-Overify-time=at`.
 */
export function checkSigner(file: AllowedSignersFile, q: { principal: string; namespace: string; key: Buffer; at: Date }): SignerCheck {
  if (file.revoked?.some((k) => k.equals(q.key))) return { ok: false, reason: `signed by key ${fingerprint(q.key)}, which policy/revoked_keys revokes` };
  const forPrincipal = file.signers.filter((s) => !s.certAuthority && principalMatches(q.principal, s.principals));
  const sameKey = forPrincipal.filter((s) => s.key.equals(q.key));
  if (sameKey.length === 0) {
    const fp = fingerprint(q.key);
    return {
      ok: false,
      reason: forPrincipal.length
        ? `signed by key ${fp}, which allowed_signers does not list for "${q.principal}"`
        : `signed by key ${fp}; allowed_signers has no line for "${q.principal}"`,
    };
  }
  const inNamespace = sameKey.filter((s) => !s.namespaces || s.namespaces.some((n) => matchPattern(q.namespace, n)));
  if (inNamespace.length === 0) return { ok: false, reason: `key ${sameKey[0]!.fingerprint} is not allowed for namespace "${q.namespace}" (line ${sameKey[0]!.line})` };
  // As ssh-keygen -Overify-time: to the second, both ends included.
  const at = Math.floor(q.at.getTime() / 1000) * 1000;
  const valid = inNamespace.find((s) => (!s.validAfter || at >= s.validAfter.getTime()) && (!s.validBefore || at <= s.validBefore.getTime()));
  if (!valid) {
    const s = inNamespace[0]!;
    return { ok: false, reason: `key ${s.fingerprint} was not valid at ${q.at.toISOString()} (allowed_signers line ${s.line}: valid-after/valid-before)` };
  }
  return { ok: true, signer: valid };
}

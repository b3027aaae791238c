/**
 * Loads and validates the host configuration. A bad file gets one message per problem
 * naming the file, the line and the field, with an example of the right form, and exit 2.
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { isMap, LineCounter, parseDocument, type Node as YamlNode } from 'yaml';
import type { ZodIssue } from 'zod';
import { configExamples, hostConfig, parseRsyncUrl, parseSshUrl, type HostConfig, type SecondarySpec } from '../schemas/config.js';
import { Exit, RespaldoError } from './errors.js';

export const DEFAULT_CONFIG = '/etc/respaldo/agent.yaml';
const DEFAULT_STATE = '/var/lib/respaldo/state';

/**
 * Where CSC's copy goes: a local path, a folder on a host reached over SSH, or a folder in
 * a module of an rsync daemon (`path` is then `/<module>/<folder>`, as the daemon's urls name it).
 */
export type SecondaryLocation =
  | { kind: 'local'; path: string }
  | { kind: 'ssh'; user: string | undefined; host: string; path: string; port: number | undefined; identity: string | undefined; hostKey: string | undefined; knownHosts: string | undefined }
  | { kind: 'rsync'; user: string | undefined; host: string; port: number | undefined; module: string; path: string; passwordFile: string | undefined };

/** Where JAA's copy goes: the same three kinds (a mounted disk or share, a host over SSH, a module of an rsync daemon). */
export type TargetLocation = SecondaryLocation;

/** A validated host config with every path made absolute. */
export type Config = Omit<HostConfig, 'targets'> & { file: string; state: string; targets: { primary: TargetLocation; secondary: SecondaryLocation | undefined } };

/** The primary target's folder, for what needs it on this machine; undefined for a remote primary. */
export function localPrimary(config: Config): string | undefined {
  return config.targets.primary.kind === 'local' ? config.targets.primary.path : undefined;
}

/** An rsync daemon's url without the path: `rsync://user@host:port` (an IPv6 address in brackets). */
export function daemonUrl(l: Extract<TargetLocation, { kind: 'rsync' }>): string {
  return `rsync://${l.user ? `${l.user}@` : ''}${l.host.includes(':') ? `[${l.host}]` : l.host}${l.port ? `:${l.port}` : ''}`;
}

/** How messages name a target: its path, `user@host:/path`, or `rsync://user@host:port/module/path`. */
export function targetDisplay(l: TargetLocation): string {
  if (l.kind === 'local') return l.path;
  if (l.kind === 'ssh') return `${l.user ? `${l.user}@` : ''}${l.host}:${l.path}`;
  return `${daemonUrl(l)}${l.path}`;
}

/** The primary target's folder for a command (`what`) that works on it only on this machine; a usage error for a remote one. */
export function requireLocalPrimary(config: Config, what: string): string {
  const path = localPrimary(config);
  if (path !== undefined) return path;
  throw new RespaldoError(`${what} needs the primary target on this machine, and ${config.file} keeps it at ${targetDisplay(config.targets.primary)}${config.targets.primary.kind === 'ssh' ? ' over SSH' : ''}`, {
    exitCode: Exit.usage,
    hint: 'run it on the host that holds the primary target, or keep the primary target on a disk or share mounted here',
  });
}

/** The secondary target as the agent uses it (the schema checked its form). */
function secondaryLocation(spec: SecondarySpec, abs: (p: string) => string): SecondaryLocation {
  const url = typeof spec === 'string' ? spec : spec.url;
  const daemon = parseRsyncUrl(url);
  if (daemon) {
    const file = typeof spec === 'string' ? undefined : spec['password-file'];
    return { kind: 'rsync', user: daemon.user, host: daemon.host, port: daemon.port, module: daemon.module, path: `/${daemon.module}${daemon.path}`, passwordFile: file ? abs(file) : undefined };
  }
  const ssh = parseSshUrl(url);
  if (!ssh) return { kind: 'local', path: abs(url) };
  const opts = typeof spec === 'string' ? undefined : spec;
  return {
    kind: 'ssh',
    ...ssh,
    port: opts?.port,
    identity: opts?.identity ? abs(opts.identity) : undefined,
    hostKey: opts?.['host-key'],
    knownHosts: opts?.['known-hosts'] ? abs(opts['known-hosts']) : undefined,
  };
}

export async function loadConfig(file: string, cwd: string): Promise<Config> {
  const path = resolve(cwd, file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new RespaldoError(`cannot read the configuration ${path}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`, {
      exitCode: Exit.usage,
      hint: code === 'ENOENT' ? `write it (see "Configuration" in the README), or point at it with --config FILE` : undefined,
    });
  }
  return parseConfig(text, path);
}

/** Parses a config's text; `file` is used for messages and to resolve relative paths. */
export function parseConfig(text: string, file: string): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const lines = doc.errors.slice(0, 5).map((e) => {
      const pos = lineCounter.linePos(e.pos[0]);
      return `  ${file}:${pos.line}:${pos.col}: ${e.message.split('\n')[0]}`;
    });
    throw new RespaldoError(`the configuration is not valid YAML:\n${lines.join('\n')}`, {
      exitCode: Exit.usage,
      hint: `a minimal configuration looks like this:\n${indent(MINIMAL_EXAMPLE)}`,
    });
  }
  const result = hostConfig.safeParse(doc.toJS() ?? {});
  if (!result.success) {
    const issues = result.error.issues.slice(0, 8).map((issue) => describeIssue(issue, doc.contents, lineCounter, file));
    throw new RespaldoError(`the configuration has ${result.error.issues.length === 1 ? 'an error' : `${result.error.issues.length} errors`}:\n${issues.join('\n')}`, {
      exitCode: Exit.usage,
    });
  }
  const data = result.data as unknown as HostConfig;
  const base = dirname(file);
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const config: Config = {
    ...data,
    file,
    key: abs(data.key),
    records: abs(data.records),
    state: abs(data.state ?? DEFAULT_STATE),
    targets: { primary: secondaryLocation(data.targets.primary, abs), secondary: data.targets.secondary === undefined ? undefined : secondaryLocation(data.targets.secondary, abs) },
    repositories: (data.repositories ?? []).map((r) =>
      r.kind === 'database'
        ? {
            ...r,
            paths: (r.paths ?? []).map(abs),
            ...(r.bindir ? { bindir: abs(r.bindir) } : {}),
            ...(r.connection?.['password-file'] ? { connection: { ...r.connection, 'password-file': abs(r.connection['password-file']) } } : {}),
          }
        : { ...r, paths: r.paths.map(abs) },
    ),
    ...(data.requests
      ? {
          requests: {
            ...data.requests,
            ...(data.requests['allow-paths'] ? { 'allow-paths': data.requests['allow-paths'].map(abs) } : {}),
            ...(data.requests['restore-to'] ? { 'restore-to': data.requests['restore-to'].map(abs) } : {}),
            ...(data.requests.servers
              ? {
                  servers: Object.fromEntries(
                    Object.entries(data.requests.servers).map(([name, s]) => [
                      name,
                      { ...s, ...(s.bindir ? { bindir: abs(s.bindir) } : {}), ...(s.connection?.['password-file'] ? { connection: { ...s.connection, 'password-file': abs(s.connection['password-file']) } } : {}) },
                    ]),
                  ),
                }
              : {}),
          },
        }
      : {}),
  };
  // A target inside a source would back up the backups, growing each time without end.
  const inside = (child: string, parent: string) => child === parent || child.startsWith(parent.endsWith('/') ? parent : `${parent}/`);
  const secondary = config.targets.secondary;
  const primary = localPrimary(config);
  const locals: [string, string][] = [...(primary ? [['primary', primary] as [string, string]] : []), ...(secondary?.kind === 'local' ? [['secondary', secondary.path] as [string, string]] : [])];
  config.repositories.forEach((repo, i) =>
    repo.paths.forEach((path, j) => {
      for (const [role, target] of locals) {
        if (!inside(target, path)) continue;
        const line = lineOf(nodeAt(doc.contents, ['repositories', i, 'paths', j]), lineCounter);
        throw new RespaldoError(
          `the configuration has an error:\n  ${file}:${line}: repositories[${i}].paths[${j}]: ${path} contains the ${role} target ${target}, so each backup would copy the backups before it`,
          { exitCode: Exit.usage, hint: 'keep the targets outside the folders you back up, or list narrower folders in "paths"' },
        );
      }
    }),
  );
  if (primary && secondary?.kind === 'local' && (inside(secondary.path, primary) || inside(primary, secondary.path)))
    throw new RespaldoError(`the configuration has an error:\n  ${file}:${lineOf(nodeAt(doc.contents, ['targets', 'secondary']), lineCounter)}: targets.secondary: ${secondary.path} and the primary target ${primary} overlap: the second copy must be on another disk`, {
      exitCode: Exit.usage,
      hint: "point targets.secondary at CSC's copy: another disk or share, or user@host:/path over SSH",
    });
  // The archive of point-in-time recovery is written by the database server, here.
  const pitr = primary ? -1 : config.repositories.findIndex((r) => r.kind === 'database' && r.pitr);
  if (pitr >= 0)
    throw new RespaldoError(`the configuration has an error:\n  ${file}:${lineOf(nodeAt(doc.contents, ['repositories', pitr, 'pitr']), lineCounter)}: repositories[${pitr}].pitr: point-in-time recovery needs the primary target on this machine (the server archives its WAL or binary logs there), and targets.primary is remote`, {
      exitCode: Exit.usage,
      hint: 'keep the primary target on a disk or share mounted here, or back the database up by dumps alone (leave "pitr" out)',
    });
  // An rsync daemon is compared with the primary's snapshot on this machine.
  if (!primary && secondary?.kind === 'rsync')
    throw new RespaldoError(`the configuration has an error:\n  ${file}:${lineOf(nodeAt(doc.contents, ['targets', 'secondary']), lineCounter)}: targets.secondary: the primary target is remote (${targetDisplay(config.targets.primary)}), and an rsync daemon's copies are compared with the primary's snapshot on this machine`, {
      exitCode: Exit.usage,
      hint: 'reach CSC over SSH (user@host:/path) or as a mounted path, or keep the primary target on this machine',
    });
  return config;
}

const MINIMAL_EXAMPLE = `host: web01
key: /etc/respaldo/host.key
records: /var/lib/respaldo/records
targets:
  primary: /mnt/respaldos
repositories:
  - name: nginx
    kind: config
    paths: [/etc/nginx]`;

function indent(text: string, by = '    '): string {
  return text
    .split('\n')
    .map((l) => by + l)
    .join('\n');
}

function fieldName(path: (string | number)[]): string {
  return path.reduce<string>((acc, seg) => (typeof seg === 'number' ? `${acc}[${seg}]` : acc ? `${acc}.${seg}` : seg), '') || '(top level)';
}

/** The YAML node at a path, or the nearest ancestor that exists. */
function nodeAt(root: unknown, path: (string | number)[]): YamlNode | undefined {
  let node = root as YamlNode | undefined;
  let found = node;
  for (const seg of path) {
    const next = (node as { get?: (k: unknown, keepScalar: boolean) => unknown } | undefined)?.get?.(seg, true) as YamlNode | undefined;
    if (next === undefined) break;
    node = next;
    found = next;
  }
  return found;
}

/** The key node of `key` in the map at `path`, for unknown-field errors. */
function keyNodeAt(root: unknown, path: (string | number)[], key: string): YamlNode | undefined {
  const map = nodeAt(root, path);
  if (!isMap(map)) return undefined;
  const pair = map.items.find((p) => (p.key as { value?: unknown } | null)?.value === key);
  return pair?.key as YamlNode | undefined;
}

function lineOf(node: YamlNode | undefined, lc: LineCounter): number {
  return node?.range ? lc.linePos(node.range[0]).line : 1;
}

function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return row[b.length]!;
}

function exampleFor(path: (string | number)[]): string | undefined {
  for (let i = path.length - 1; i >= 0; i--) {
    const seg = path[i];
    if (typeof seg === 'string' && configExamples[seg]) return configExamples[seg];
  }
  return undefined;
}

function describeIssue(issue: ZodIssue, root: unknown, lc: LineCounter, file: string): string {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys
      .map((key) => {
        const suggestion = closest(key, Object.keys(configExamples));
        const where = `${file}:${lineOf(keyNodeAt(root, issue.path, key) ?? nodeAt(root, issue.path), lc)}`;
        const example = suggestion ? configExamples[suggestion] : exampleFor(issue.path);
        return `  ${where}: ${fieldName([...issue.path, key])}: unknown field "${key}"${suggestion ? `; did you mean "${suggestion}"?` : ''}${example ? `\n    for example:\n${indent(example, '      ')}` : ''}`;
      })
      .join('\n');
  }
  let message = issue.message;
  if (issue.code === 'invalid_type' && issue.received === 'undefined') message = 'is required';
  if (issue.code === 'invalid_union') {
    // Show the branch's own message (e.g. the schedule forms) rather than zod's "Invalid input".
    const inner = issue.unionErrors.flatMap((e) => e.issues).find((i) => i.code !== 'unrecognized_keys' && i.code !== 'invalid_type');
    message = inner?.message ?? 'is not in any of the accepted forms';
  }
  const example = exampleFor(issue.path);
  return `  ${file}:${lineOf(nodeAt(root, issue.path), lc)}: ${fieldName(issue.path)}: ${message}${example ? `\n    for example:\n${indent(example, '      ')}` : ''}`;
}

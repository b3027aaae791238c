/**
 * Fixtures for tests that cross parts: real temporary folders, a real records git
 * repository, the compiled agent spawned as cron would run it.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect } from 'vitest';
import { parse, stringify } from 'yaml';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const MAIN = join(ROOT, 'dist/agent/main.js');

const made: string[] = [];
afterAll(() => {
  if (process.env.RESPALDO_KEEP_TEST_DIRS) return;
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A fresh temporary folder, removed after the test file. */
export function tempDir(prefix = 'respaldo-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the compiled agent as cron would: no terminal, so success is silent. */
export function respaldo(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; prefix?: string[] } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const [cmd, ...pre] = opts.prefix ?? [];
    const child = cmd
      ? spawn(cmd, [...pre, process.execPath, MAIN, ...args], { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env } })
      : spawn(process.execPath, [MAIN, ...args], { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

export function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'user.name=JAA', '-c', 'user.email=jaa@example.org', '-c', 'commit.gpgsign=false', '-c', 'init.defaultBranch=main', ...args], { cwd, encoding: 'utf8' });
}

export interface RepoSpec {
  name: string;
  kind?: 'config' | 'files' | 'source' | 'database';
  paths?: string[];
  exclude?: string[];
  schedule?: { every: string } | { cron: string };
  verify?: Record<string, unknown>;
  /** Database repositories: engine, connection, databases, bindir… as in the host config. */
  [field: string]: unknown;
}

export interface Deployment {
  root: string;
  config: string;
  records: string;
  target: string;
  host: string;
  /** The records folder's bare remote, when made with `remote: true`. */
  remote: string | undefined;
  run(...args: string[]): Promise<CliResult>;
  /** Record files of the host, oldest first (relative to the records folder). */
  recordFiles(): string[];
  snapshots(repo: string): string[];
}

/**
 * A host deployment in a temporary folder: a records git repository (optionally with a
 * bare remote), a primary target, a host config; enrolled with `respaldo init` and trusted
 * in policy/allowed_signers as JAA would do it. With `approver` (an SSH key file and its
 * public line), JAA is the policy's first approver, and the policy's commits are signed
 * with that key: the policy is anchored.
 */
export async function deployment(
  repos: RepoSpec[],
  opts: { host?: string; remote?: boolean; extra?: Record<string, unknown>; enrol?: boolean; approver?: { key: string; line: string } } = {},
): Promise<Deployment> {
  const root = tempDir();
  const host = opts.host ?? 'web01';
  const records = join(root, 'records');
  const target = join(root, 'target');
  mkdirSync(target);
  let remote: string | undefined;
  if (opts.remote) {
    remote = join(root, 'records-origin.git');
    git(root, 'init', '--quiet', '--bare', remote);
    git(root, 'clone', '--quiet', remote, records);
  } else {
    git(root, 'init', '--quiet', records);
  }
  mkdirSync(join(records, 'policy'));
  writeFileSync(join(records, 'policy/allowed_signers'), `# test policy\n${opts.approver ? `jaa namespaces="git" ${opts.approver.line}\n` : ''}`);
  writeFileSync(join(records, '.gitattributes'), '* -text\n');
  const commit = (message: string) => git(records, ...(opts.approver ? ['-c', 'gpg.format=ssh', '-c', `user.signingkey=${opts.approver.key}`, 'commit', '-S'] : ['commit']), '--quiet', '-m', message);
  git(records, 'add', '.');
  commit('policy');
  if (remote) git(records, 'push', '--quiet', 'origin', 'HEAD');
  const config = join(root, 'agent.yaml');
  writeFileSync(
    config,
    stringify({
      host,
      key: join(root, 'host.key'),
      records,
      state: join(root, 'state'),
      targets: { primary: target },
      repositories: repos.map((r) => ({ kind: 'files', ...r })),
      ...opts.extra,
    }),
  );
  const run = (...args: string[]) => respaldo([...args, '--config', config]);
  if (opts.enrol !== false) {
    const init = await run('init');
    if (init.code !== 0) throw new Error(`init failed: ${init.stderr}`);
    appendFileSync(join(records, 'policy/allowed_signers'), readFileSync(join(root, 'host.key.pub')));
    git(records, 'add', 'policy/allowed_signers');
    commit('trust the host');
    if (remote) git(records, 'push', '--quiet', 'origin', 'HEAD');
  }
  return {
    root,
    config,
    records,
    target,
    host,
    remote,
    run,
    recordFiles: () => listRecordFiles(records, host),
    snapshots: (repo) => {
      try {
        return readdirSync(join(target, host, repo, 'snapshots')).sort();
      } catch {
        return [];
      }
    },
  };
}

export function listRecordFiles(records: string, host: string): string[] {
  const base = join(records, 'hosts', host);
  const out: string[] = [];
  for (const year of readdirSync(base).sort()) for (const name of readdirSync(join(base, year)).sort()) if (name.endsWith('.yaml')) out.push(`hosts/${host}/${year}/${name}`);
  return out;
}

/** Writes a tree of files: keys are paths relative to `dir`, values contents (string or bytes). */
export function writeTree(dir: string, files: Record<string, string | Buffer>): void {
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), content);
  }
}

export interface TreeEntry {
  type: string;
  ino: bigint;
  mode: number;
  mtimeNs: bigint;
  size: number;
  sha256?: string;
  link?: string;
}

/**
 * The processes this test file started and theirs (the agent, and what it runs), read from
 * /proc: argv and environment. Other test files run in other workers at the same time, with
 * passwords of their own in their setup commands: a scan of every process would see them.
 */
export function ownProcesses(): { pid: string; argv: string; environ: string }[] {
  const me = String(process.pid);
  const out: { pid: string; argv: string; environ: string }[] = [];
  for (const pid of descendants(me)) {
    try {
      out.push({ pid, argv: readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' '), environ: readFileSync(`/proc/${pid}/environ`, 'utf8') });
    } catch {
      // gone already
    }
  }
  return out;
}

/** Every entry under `dir` by relative path (as a latin1 string, so any byte name survives), with what a user would compare. */
export function describeTree(dir: string | Buffer): Map<string, TreeEntry> {
  const out = new Map<string, TreeEntry>();
  const walk = (abs: Buffer, rel: string) => {
    for (const name of readdirSync(abs, { encoding: 'buffer' })) {
      const p = Buffer.concat([abs, Buffer.from('/'), name]);
      const r = rel ? `${rel}/${name.toString('latin1')}` : name.toString('latin1');
      const st = lstatSync(p, { bigint: true });
      const entry: TreeEntry = { type: st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : st.isFile() ? 'f' : 'o', ino: st.ino, mode: Number(st.mode), mtimeNs: st.mtimeNs, size: Number(st.size) };
      if (entry.type === 'f') entry.sha256 = createHash('sha256').update(readFileSync(p)).digest('hex');
      if (entry.type === 'l') entry.link = readlinkSync(p, { encoding: 'buffer' }).toString('latin1');
      out.set(r, entry);
      if (entry.type === 'd') walk(p, r);
    }
  };
  walk(Buffer.isBuffer(dir) ? dir : Buffer.from(dir), '');
  return out;
}

/**
 * Points the deployment's primary target at `primary` (a url, or a url with its options),
 * after `edit` may change more of the config; the local target folder the deployment made
 * is removed, so that nothing can appear there unnoticed.
 */
export function usePrimary(dep: Deployment, primary: unknown, edit?: (config: any) => void): void {
  const config = parse(readFileSync(dep.config, 'utf8'));
  config.targets.primary = primary;
  edit?.(config);
  writeFileSync(dep.config, JSON.stringify(config));
  rmSync(dep.target, { recursive: true, force: true });
}

/** The entries of a snapshot folder's `manifest.jsonl` (on this machine), as objects. */
export function manifestOf(dir: string): any[] {
  return readFileSync(join(dir, 'manifest.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
}

/** The first event of `type` that a `--json` run printed. */
export function eventOf(stdout: string, type: string): any {
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .find((ev) => ev.type === type);
}

/** Runs `respaldo status` on a config file `name` holding `text`, which must be refused (exit 2); its stderr. */
export async function refusedConfig(name: string, text: string): Promise<string> {
  const dir = tempDir();
  writeFileSync(join(dir, name), text);
  const r = await respaldo(['status', '--config', join(dir, name)]);
  expect(r.code).toBe(2);
  return r.stderr;
}

/**
 * Flips one bit of a file and keeps its modification time to the nanosecond, as a manifest
 * keeps it (utimes through a Date keeps milliseconds): damage only reading the bytes can tell.
 */
export function flipBit(file: string, at = 0): void {
  const { mtimeNs } = statSync(file, { bigint: true });
  const bytes = readFileSync(file);
  bytes[at]! ^= 0x01;
  writeFileSync(file, bytes);
  setMtimeNs(file, mtimeNs);
}

/** Sets a file's modification time to the nanosecond (GNU touch). */
export function setMtimeNs(file: string, ns: bigint): void {
  execFileSync('touch', ['-m', '-d', `@${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`, file]);
}

export function inodeOf(path: string): bigint {
  return lstatSync(path, { bigint: true }).ino;
}

/** The host's records, oldest first, parsed; with `type`, those of that type. */
export function recordsOf(d: Deployment, type?: string): Record<string, any>[] {
  return d
    .recordFiles()
    .map((f) => parse(readFileSync(join(d.records, f), 'utf8')))
    .filter((r) => !type || r.type === type);
}

/** A tree from describeTree without its inodes: what a copy must keep, not where it lies. */
export function withoutInodes<T extends { ino: bigint }>(tree: Map<string, T>): Map<string, T> {
  return new Map([...tree].map(([k, v]) => [k, { ...v, ino: 0n }]));
}

/** The host's newest record, parsed. */
export function lastRecord(d: Deployment): Record<string, any> {
  return parse(readFileSync(join(d.records, d.recordFiles().at(-1)!), 'utf8'));
}

/** `respaldo records verify` accepts every record and chain of the deployment. */
export async function verified(d: Deployment): Promise<void> {
  const r = await respaldo(['records', 'verify', d.records]);
  expect(r.code, r.stdout).toBe(0);
}

/** The pids of every process below `root` (not `root` itself), from /proc. */
function descendants(root: string): string[] {
  const pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  const parent = new Map<string, string>();
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // pid (comm) state ppid …: comm may hold spaces and parentheses.
      parent.set(pid, stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]!);
    } catch {
      // gone already
    }
  }
  const below = (pid: string) => {
    for (let p = parent.get(pid), hops = 0; p && p !== '0' && hops < 64; p = parent.get(p), hops++) if (p === root) return true;
    return false;
  };
  return pids.filter(below);
}

/** A system user's ids, and `as`: the command prefix that runs a program as that user (setpriv, no other groups). */
export function ids(user: string): { uid: number; gid: number; as: string[] } {
  const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }));
  const gid = Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }));
  return { uid, gid, as: ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--'] };
}

/** A temporary folder that `owner` owns, with `mode`: a throwaway server's home. */
export function ownedTempDir(prefix: string, owner: { uid: number; gid: number }, mode: number): string {
  const dir = tempDir(prefix);
  chownSync(dir, owner.uid, owner.gid);
  chmodSync(dir, mode);
  return dir;
}

/** "2026-11-24 02:15:07" in `zone`: how a person notes the time on the wall clock. */
export function wallClock(date: Date, zone: string): string {
  const p = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' })
      .formatToParts(date)
      .map((x) => [x.type, x.value]),
  );
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A free TCP port on loopback, for a server a test starts. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Whether a server a test started accepts connections on a loopback port yet. */
export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A server a test starts on a loopback port (sshd, rsync --daemon), that can be stopped and started again. */
export function loopbackServer(name: string, command: string, args: string[], port: number): { start(): Promise<void>; stop(): Promise<void> } {
  let child: ChildProcess | undefined;
  return {
    async start() {
      child = spawn(command, args, { stdio: ['ignore', 'ignore', 'inherit'] });
      for (let i = 0; i < 100; i++) {
        if (child.exitCode !== null) throw new Error(`${name} exited with code ${child.exitCode}`);
        if (await accepts(port)) return;
        await sleep(50);
      }
      throw new Error(`${name} did not listen on port ${port}`);
    },
    async stop() {
      if (!child || child.exitCode !== null) return;
      // A server's sessions outlive it (sshd's run in sessions of their own): they go with it.
      const sessions = descendants(String(child.pid));
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      for (const pid of sessions) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // gone already
        }
      }
    },
  };
}

/** A clock that tests move by hand: the agent's commands called in-process take its `now`. */
export function clock(start: string) {
  let now = new Date(start).getTime();
  return {
    now: () => new Date(now),
    advance: (hours: number) => {
      now += hours * 3_600_000;
    },
  };
}

/** Runs `body` with the deployment's primary target on a 2 MiB tmpfs: a target too small for the backup. */
export async function onFullTarget(d: Deployment, config: string, body: (full: string) => Promise<void>): Promise<void> {
  const full = join(d.root, 'small-disk');
  mkdirSync(full);
  expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', full]).status).toBe(0);
  try {
    writeFileSync(d.config, config.replace(`primary: ${d.target}`, `primary: ${full}`));
    mkdirSync(join(full, d.host));
    await body(full);
  } finally {
    execFileSync('umount', [full]);
  }
}

/**
 * Lets other users pass through every folder above `path` (o+x, not read): the server's
 * user runs the agent as its archive_command, and a checkout in a private temporary folder
 * (as CI makes) would be out of its reach.
 */
export function letOthersReach(path: string): void {
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    const mode = statSync(dir).mode & 0o7777;
    if (!(mode & 0o001)) chmodSync(dir, mode | 0o001);
    if (dir === dirname(dir)) break;
  }
}

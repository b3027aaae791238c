/**
 * `source` repositories whose paths are git repositories (a working tree, or a bare
 * repository as on a git server): each one is stored as one bundle, `git bundle create
 * --all` — every ref and all the history behind them, a full copy every time, as clause
 * 4.1.2 asks for source code. A bundle is checked before the snapshot is kept (verification
 * level `restore`): `git bundle verify`, a mirror clone into a scratch folder, `git fsck
 * --full` of the clone, and the clone's refs against the bundle's and the repository's. The
 * record lists every ref with its commit id. Plain folders stay with sources/files.ts; a
 * repository that mixes the two is refused (see `gitRepositories`).
 *
 * The agent runs as root and the repositories belong to their developers (www-data for a
 * portal). Git refuses such a repository ("dubious ownership") because its own
 * `.git/config` can make git run programs — core.fsmonitor, filter drivers — as whoever
 * runs git there: root, here. respaldo names each repository in `safe.directory` (in git's
 * command-line scope) and, in exchange, switches those programs off for every git it runs there,
 * and never writes into a repository (GIT_OPTIONAL_LOCKS=0: `git status` does not refresh
 * the index, which would leave a root-owned index that the developer cannot update).
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { lstat, mkdir, realpath, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { HashingStream } from '../hashing.js';
import type { RepositoryConfig } from '../../schemas/config.js';
import type { GitBundle, GitInfo, GitRef } from '../../schemas/git.js';
import { BackupFailure } from '../errors.js';
import { lastLines, runTool, streamTool } from '../exec.js';
import { exists } from '../fsutil.js';
import { unreadableSource } from './files.js';
import type { Source } from './source.js';

/** One configured path that is a git repository. */
export interface GitRepository {
  /** As configured, for messages on the terminal. */
  path: string;
  /** Its place in the repository's `paths`: records name it `{paths[N]}`. */
  index: number;
  /** The resolved path: what git sees, and what `safe.directory` must name. */
  real: string;
  bare: boolean;
  /** The folder that holds the objects and refs (`.git`, or the bare repository itself). */
  commonDir: string;
  /** The environment's configuration for every git run in this repository (see the top of the file). */
  config: Record<string, string>;
}

interface GitRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The environment of every git respaldo runs on a source repository: none of the
 * sysadmin's or the system's git config (an alias, a pager, a credential helper, a global
 * hooksPath), no prompt, no repository chosen by a stray GIT_DIR, messages in English (a
 * missing repository is told apart from a broken one by git's message), and objects as
 * stored, not as refs/replace/ would show them.
 */
function gitEnv(env: NodeJS.ProcessEnv, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: env.PATH ?? '/usr/bin:/bin',
    LC_ALL: 'C',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_ATTR_NOSYSTEM: '1',
    GIT_TERMINAL_PROMPT: '0',
    GIT_PAGER: 'cat',
    GIT_OPTIONAL_LOCKS: '0',
    GIT_NO_REPLACE_OBJECTS: '1',
    ...extra,
  };
}

async function git(args: string[], opts: { env: NodeJS.ProcessEnv; signal: AbortSignal; extraEnv?: Record<string, string> | undefined }): Promise<GitRun> {
  const chunks: Buffer[] = [];
  const result = await runTool('git', args, { env: gitEnv(opts.env, opts.extraEnv), signal: opts.signal, onStdout: (c) => chunks.push(c) });
  return { code: result.code, stdout: Buffer.concat(chunks).toString('utf8'), stderr: result.stderr };
}

/**
 * Configuration for every git run in a repository, as GIT_CONFIG_COUNT/KEY/VALUE (the
 * command line's scope, which `safe.directory` needs; and a key is never split at an "=",
 * as `-c` would split a filter driver named "a=b"): the repository trusted, and the
 * programs its own config could start switched off.
 */
function repositoryConfig(real: string, filters: string[]): Record<string, string> {
  const pairs: [string, string][] = [
    ['safe.directory', real],
    ['core.fsmonitor', 'false'],
    ...filters.flatMap((name): [string, string][] => [
      [`filter.${name}.clean`, ''],
      [`filter.${name}.smudge`, ''],
      [`filter.${name}.process`, ''],
      [`filter.${name}.required`, 'false'],
    ]),
  ];
  const env: Record<string, string> = { GIT_CONFIG_COUNT: String(pairs.length) };
  pairs.forEach(([key, value], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = key;
    env[`GIT_CONFIG_VALUE_${i}`] = value;
  });
  return env;
}

/**
 * The bundle's file name under data/: the folder's name, for the reader, and 12 hex digits
 * of the SHA-256 of its configured path, so that two repositories of the same name
 * (/srv/a/portal, /srv/b/portal) never share a file and a path keeps its name from one
 * snapshot to the next (the full path stays out of records).
 */
export function bundleName(path: string): string {
  const full = resolve(path);
  const base = basename(full).replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '').slice(0, 64) || 'root';
  return `${base}-${createHash('sha256').update(full).digest('hex').slice(0, 12)}.bundle`;
}

/**
 * Whether `path` is itself a git repository: the top of a working tree, or a bare
 * repository. Asked of `git rev-parse`, not guessed from names; git may not look above the
 * path (GIT_CEILING_DIRECTORIES), so a plain folder inside a working tree is a plain folder.
 */
async function openRepository(repo: RepositoryConfig, i: number, env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<GitRepository | undefined> {
  const path = repo.paths[i]!;
  let real: string;
  try {
    real = await realpath(path);
    if (!(await stat(real)).isDirectory()) return undefined;
  } catch (e) {
    // A link to nowhere is the plain-folder source's to report (it backs up the link).
    if (await lstat(path).then(() => true, () => false)) return undefined;
    throw unreadableSource(repo, i, path, e);
  }
  const opts = { env, signal, extraEnv: { ...repositoryConfig(real, []), GIT_CEILING_DIRECTORIES: dirname(real) } };
  const probe = await git(['-C', real, 'rev-parse', '--is-bare-repository', '--absolute-git-dir', '--path-format=absolute', '--git-common-dir'], opts);
  if (probe.code !== 0) {
    if (/not a git repository/.test(probe.stderr)) return undefined;
    throw new BackupFailure('source', `git cannot open the repository ${path}: ${lastLines(probe.stderr, 2)}`, `check it with "git -C ${path} status" (as the repository's owner) and run again; the previous snapshot is intact`, { detail: probe.stderr });
  }
  const [bareText, gitDir, commonDir] = probe.stdout.split('\n');
  const bare = bareText === 'true';
  if (bare ? gitDir !== real : (await git(['-C', real, 'rev-parse', '--show-toplevel'], opts)).stdout.trim() !== real) return undefined;
  // Filter drivers are named in the repository's config: switch off each one.
  const listed = await git(['-C', real, 'config', '-z', '--get-regexp', '^filter\\.'], opts);
  const filters = new Set<string>();
  for (const entry of listed.stdout.split('\0')) {
    const m = /^filter\.(.+)\.[^.\n]+\n?/.exec(entry);
    if (m) filters.add(m[1]!);
  }
  return { path, index: i, real, bare, commonDir: commonDir!, config: repositoryConfig(real, [...filters]) };
}

/**
 * The git repositories of a `source` repository; undefined when none of its paths is one
 * (the plain folders are copied as files). A repository that mixes git repositories and
 * plain folders is refused, naming both: one snapshot has one layout, one verification and
 * one rule for "unchanged", and a folder that becomes a git repository (someone runs `git
 * init` in it) must not silently move from copied files to a bundle next to other files.
 */
export async function gitRepositories(repo: RepositoryConfig, env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<GitRepository[] | undefined> {
  const found: GitRepository[] = [];
  const plain: string[] = [];
  for (let i = 0; i < repo.paths.length; i++) {
    const r = await openRepository(repo, i, env, signal);
    if (r) found.push(r);
    else plain.push(repo.paths[i]!);
  }
  if (found.length === 0) return undefined;
  if (plain.length)
    throw new BackupFailure(
      'source',
      `repository ${repo.name} mixes git repositories (${found.map((r) => r.path).join(', ')}) and plain folders or files (${plain.join(', ')}): a source repository is stored either as git bundles or as copied files, not both`,
      `split it in the host config: one repository with the git repositories, another (kind source, config or files) with ${plain.join(', ')}; the previous snapshot is intact`,
    );
  const names = new Map<string, string>();
  for (const r of found) {
    const name = bundleName(r.path);
    const other = names.get(name);
    if (other !== undefined) throw new BackupFailure('source', `repository ${repo.name} lists ${r.path} twice (also as ${other})`, `remove one of them from repositories[${repo.name}].paths in the host config`);
    names.set(name, r.path);
  }
  return found;
}

/** Runs git in a source repository, with its configuration (see repositoryConfig). */
function gitIn(r: GitRepository, args: string[], env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<GitRun> {
  return git(['-C', r.real, ...args], { env, signal, extraEnv: r.config });
}

/** "<object id> <ref name>" lines (for-each-ref, bundle list-heads): name → object id. */
function refLines(text: string): Map<string, string> {
  const refs = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{40}(?:[0-9a-f]{24})?) (\S+)$/.exec(line);
    if (m) refs.set(m[2]!, m[1]!);
  }
  return refs;
}

/** The first difference between two ref maps, in words; undefined when they are equal. */
function refDifference(want: Map<string, string>, got: Map<string, string>, wantName: string, gotName: string): string | undefined {
  for (const [name, id] of want) {
    const other = got.get(name);
    if (other === undefined) return `${name} is in ${wantName} but not in ${gotName}`;
    if (other !== id) return `${name} is ${id} in ${wantName} but ${other} in ${gotName}`;
  }
  for (const name of got.keys()) if (!want.has(name)) return `${name} is in ${gotName} but not in ${wantName}`;
  return undefined;
}

const sameRefs = (a: Map<string, string>, b: Map<string, string>) => refDifference(a, b, '', '') === undefined;

interface SourceState {
  refs: Map<string, string>;
  /** The branch HEAD names (null when detached) and its commit (null before the first commit). */
  head: { ref: string | null; commit: string | null };
}

/** A repository's refs and HEAD, read without writing anything. */
async function sourceState(r: GitRepository, env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<SourceState> {
  const listed = await gitIn(r, ['for-each-ref', '--format=%(objectname) %(refname)'], env, signal);
  if (listed.code !== 0) throw new BackupFailure('source', `git cannot list the refs of ${r.path}: ${lastLines(listed.stderr, 2)}`, `check the repository with "git -C ${r.path} fsck"; the previous snapshot is intact`, { detail: listed.stderr });
  const [ref, commit] = await Promise.all([gitIn(r, ['symbolic-ref', '--quiet', 'HEAD'], env, signal), gitIn(r, ['rev-parse', '--quiet', '--verify', 'HEAD'], env, signal)]);
  return { refs: refLines(listed.stdout), head: { ref: ref.code === 0 ? ref.stdout.trim() : null, commit: commit.code === 0 ? commit.stdout.trim() : null } };
}

/** Uncommitted work in a working tree, which no bundle holds: a warning, with a few names. */
async function uncommitted(r: GitRepository, env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<{ code: string; message: string } | undefined> {
  if (r.bare) return undefined;
  const status = await gitIn(r, ['status', '--porcelain=v1', '-z', '--untracked-files=normal', '--ignore-submodules=all'], env, signal);
  if (status.code !== 0) return { code: 'git-status-failed', message: `git status failed in ${r.path}, so uncommitted changes (which the bundle does not hold) could not be looked for: ${lastLines(status.stderr, 2)}` };
  const entries = status.stdout.split('\0');
  let changed = 0;
  let untracked = 0;
  const names: string[] = [];
  for (let k = 0; k < entries.length; k++) {
    const entry = entries[k]!;
    if (entry.length < 4) continue;
    if (entry.startsWith('??')) untracked++;
    else changed++;
    if (names.length < 5) names.push(entry.slice(3));
    // A rename or copy is followed by its old name.
    if (entry[0] === 'R' || entry[0] === 'C') k++;
  }
  if (!changed && !untracked) return undefined;
  const counts = [changed ? `${changed} changed` : '', untracked ? `${untracked} untracked` : ''].filter(Boolean).join(' and ');
  return {
    code: 'git-uncommitted-changes',
    message: `${r.path} has uncommitted work that the bundle does not hold: ${counts} file(s) or folder(s), such as ${names.join(', ')}${changed + untracked > names.length ? ', …' : ''}; commit it, or back up the working tree as files too (a files repository)`,
  };
}

/**
 * Writes the bundle of `r` to `file`, hashing its bytes (SHA-1) as git writes them: the
 * manifest then checks the stored copy against that hash, as for a database dump.
 */
async function writeBundle(r: GitRepository, file: string, env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<{ sha1: string; bytes: number }> {
  const { child, done } = streamTool('git', ['-C', r.real, 'bundle', 'create', '--quiet', '-', '--all'], { env: gitEnv(env, r.config), signal });
  const hashing = new HashingStream();
  const writing = pipeline(child.stdout!, hashing, createWriteStream(file, { flags: 'wx' }));
  const [result] = await Promise.all([
    done,
    writing.catch((e: unknown) => {
      child.kill('SIGTERM');
      throw e;
    }),
  ]);
  if (result.code !== 0)
    throw new BackupFailure('source', `git bundle create failed for ${r.path}: ${lastLines(result.stderr, 3)}`, `check the repository with "git -C ${r.path} fsck" and run again; the previous snapshot is intact`, {
      detail: result.stderr,
      ...(result.code === null ? {} : { exitCode: result.code }),
      ...(result.signal ? { signal: result.signal } : {}),
    });
  return { sha1: hashing.sha1(), bytes: hashing.bytes };
}

export interface BundleCheck {
  /** The bundle's HEAD (null when it has none). */
  head: string | null;
  /** The refs of a mirror clone of the bundle, which are exactly the bundle's. */
  refs: GitRef[];
  checks: string[];
}

/**
 * Proves that a stored bundle restores: its header (`git bundle verify`, in an empty
 * repository, since the command needs one), a mirror clone of it into `scratch` (every
 * object unpacked and hashed again by `git index-pack`), `git fsck --full` of the clone
 * (every object readable, every ref's history complete), and the clone's refs against the
 * bundle's list. Any failure is a BackupFailure at stage `verify`, naming the bundle.
 * `scratch` is created and removed here; `label` names the bundle in messages (default: its path).
 */
export async function verifyBundle(job: { bundle: string; scratch: string; env: NodeJS.ProcessEnv; signal: AbortSignal; label?: string }): Promise<BundleCheck> {
  const { bundle, scratch } = job;
  const opts = { env: job.env, signal: job.signal };
  const fail = (what: string, run: GitRun | undefined) =>
    new BackupFailure('verify', `the bundle ${job.label ?? bundle} ${what}${run ? `: ${lastLines(run.stderr, 3)}` : ''}`, 'the stored bundle does not restore (damaged while written? a damaged repository?): it was not kept as a good backup; check the target disk (dmesg) and the repository (git fsck), then run again; the previous snapshot is intact', {
      ...(run?.stderr ? { detail: run.stderr } : {}),
    });
  await rm(scratch, { recursive: true, force: true });
  await mkdir(scratch, { recursive: true });
  try {
    const heads = await git(['-C', scratch, 'bundle', 'list-heads', bundle], opts);
    if (heads.code !== 0) throw fail('cannot be read', heads);
    const listed = refLines(heads.stdout);
    const head = listed.get('HEAD') ?? null;
    listed.delete('HEAD');
    // A SHA-256 repository makes a bundle of 64-digit ids, which only a SHA-256 repository can check.
    const format = [...listed.values(), head ?? ''].some((id) => id.length === 64) ? 'sha256' : 'sha1';
    const empty = join(scratch, 'empty.git');
    const init = await git(['init', '--quiet', '--bare', '--template=', `--object-format=${format}`, empty], opts);
    if (init.code !== 0) throw fail('could not be checked (git init of a scratch repository failed)', init);
    const verified = await git(['-C', empty, 'bundle', 'verify', '--quiet', bundle], opts);
    if (verified.code !== 0) throw fail('fails git bundle verify', verified);
    const clone = join(scratch, 'clone.git');
    const cloned = await git(['clone', '--quiet', '--mirror', '--template=', bundle, clone], opts);
    if (cloned.code !== 0) throw fail('cannot be cloned', cloned);
    // Not --strict: it rejects the group-writable file modes that old gits recorded, which
    // long-lived repositories hold and clone without complaint.
    const fsck = await git(['-C', clone, 'fsck', '--full', '--no-dangling', '--no-progress'], opts);
    if (fsck.code !== 0) throw fail('clones into a repository that fails git fsck', fsck);
    const each = await git(['-C', clone, 'for-each-ref', '--format=%(objectname) %(objecttype) %(*objectname) %(*objecttype) %(refname)'], opts);
    if (each.code !== 0) throw fail('clones into a repository whose refs cannot be listed', each);
    const refs: GitRef[] = [];
    for (const line of each.stdout.split('\n')) {
      if (!line) continue;
      const [object, type, peeled, peeledType, name] = line.split(' ');
      refs.push({ name: name!, object: object!, type: type as GitRef['type'], ...(type === 'tag' && peeledType === 'commit' ? { commit: peeled! } : {}) });
    }
    const difference = refDifference(listed, new Map(refs.map((r) => [r.name, r.object])), 'the bundle', 'its clone');
    if (difference) throw fail(`clones into different refs: ${difference}`, undefined);
    return { head, refs, checks: ['git bundle verify: ok', 'git clone --mirror: ok', 'git fsck --full: ok', `refs of the clone: ${refs.length} match`] };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/**
 * What a bundle leaves out, said once per backup: Git LFS files (the bundle holds their
 * pointers) and submodules (their repositories are not part of the superproject's).
 */
async function leftOut(r: GitRepository): Promise<{ code: string; message: string }[]> {
  const warnings: { code: string; message: string }[] = [];
  if (await exists(join(r.commonDir, 'lfs', 'objects')))
    warnings.push({ code: 'git-lfs-not-bundled', message: `${r.path} uses Git LFS: the bundle holds the LFS pointers, not the large files (in ${join(r.commonDir, 'lfs')}); back those up too (a files repository) or keep them on an LFS server` });
  if (await exists(join(r.commonDir, 'modules')))
    warnings.push({ code: 'git-submodules-not-bundled', message: `${r.path} has submodules: the bundle holds the commits they are pinned at, not their repositories; back up each submodule's own repository as a source repository` });
  return warnings;
}

async function gitVersion(env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<string> {
  const v = await git(['--version'], { env, signal });
  return /(\d+\.\d+[^\s]*)/.exec(v.stdout)?.[1] ?? (v.stdout.trim() || 'unknown');
}

export const gitSource = {
  async snapshot(job) {
    const { repository: repo, env, signal } = job;
    const repos = await gitRepositories(repo, env, signal);
    if (!repos) throw new BackupFailure('internal', `repository ${repo.name} holds no git repository`, 'report this: the git source was chosen for plain folders');
    const dataDir = job.dest.replace(/\/+$/, '');
    // The bundle's SHA-1, computed over the bytes as git wrote them, is what the stored copy is checked against.
    job.transferred.algorithm = 'sha1';
    const warnings: { code: string; message: string }[] = [];
    if (repo.exclude?.length) warnings.push({ code: 'git-exclude-ignored', message: `"exclude" does not apply to git repositories: each bundle holds the whole repository (${repo.exclude.join(', ')} not excluded)` });
    const bundles: GitBundle[] = [];
    for (const r of repos) {
      const before = await sourceState(r, env, signal);
      if (before.refs.size === 0 && before.head.commit === null)
        throw new BackupFailure('source', `${r.path} is a git repository with no commits yet: there is nothing to bundle`, `commit the work in ${r.path} (git add, git commit), or back the folder up as files (kind files) until it has commits; the previous snapshot is intact`);
      const name = bundleName(r.path);
      const file = join(dataDir, name);
      const written = await writeBundle(r, file, env, signal);
      job.transferred.add(Buffer.from(name), written.sha1, written.bytes);
      // The scratch clone goes beside data/ in the partial snapshot: on the target, which has
      // room for the bundle, and removed with the rest of an interrupted run by the next one.
      const checked = await verifyBundle({ bundle: file, scratch: join(dirname(dataDir), 'git-check'), env, signal, label: `${name} of ${r.path}` });
      // The bundle must hold every ref of the repository, each at the same object. A push
      // while the bundle was made can move a ref: read them again before calling it a fault.
      const bundled = new Map(checked.refs.map((ref) => [ref.name, ref.object]));
      let state = before;
      if (!sameRefs(before.refs, bundled)) {
        state = await sourceState(r, env, signal);
        const difference = refDifference(state.refs, bundled, r.path, 'the bundle');
        if (difference) {
          if (!sameRefs(before.refs, state.refs))
            warnings.push({ code: 'git-changed-during-backup', message: `refs of ${r.path} changed while it was bundled (${difference}); the bundle holds the refs as they were when it was made` });
          else throw new BackupFailure('verify', `the bundle of ${r.path} does not hold the repository's refs: ${difference}`, 'run again; if it fails again, check the repository with "git fsck" and report this message; the previous snapshot is intact');
        }
      }
      const dirty = await uncommitted(r, env, signal);
      if (dirty) warnings.push(dirty);
      warnings.push(...(await leftOut(r)));
      bundles.push({ path: `{paths[${r.index}]}`, bundle: name, bare: r.bare, bytes: written.bytes, head: { ref: state.head.ref, commit: checked.head }, refs: checked.refs, checks: checked.checks });
    }
    const git: GitInfo = { version: await gitVersion(env, signal), repositories: bundles };
    return { warnings, origin: undefined, git };
  },

  /**
   * Unchanged when every repository has the refs and HEAD that the previous snapshot's
   * bundles hold, and a clean working tree: then that snapshot stands for today. A working
   * tree with uncommitted work always gets a new snapshot, so that each backup record
   * carries the warning.
   */
  async compare(job) {
    const previous = job.summary.git?.repositories;
    const repos = previous ? await gitRepositories(job.repository, job.env, job.signal) : undefined;
    if (!previous || !repos) return { unchanged: false, stale: undefined };
    for (const r of repos) {
      const stored = previous.find((b) => b.bundle === bundleName(r.path));
      if (!stored) return { unchanged: false, stale: undefined };
      const now = await sourceState(r, job.env, job.signal);
      const same = sameRefs(new Map(stored.refs.map((ref) => [ref.name, ref.object])), now.refs) && now.head.ref === stored.head.ref && now.head.commit === stored.head.commit;
      if (!same || (await uncommitted(r, job.env, job.signal))) return { unchanged: false, stale: undefined };
    }
    return { unchanged: true, stale: undefined };
  },
} satisfies Source;

/**
 * `respaldo db setup-pitr --repo NAME [--apply]`: what a PostgreSQL server needs for
 * point-in-time recovery. Prints the postgresql.conf lines; with --apply, sets them with
 * ALTER SYSTEM, reloads, creates the archive folder for the server's user, and says which
 * settings wait for a restart (archive_mode always does, the first time).
 */
import { realpathSync } from 'node:fs';
import { chmod, chown, mkdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { loadConfig } from '../config.js';
import type { Context } from '../context.js';
import { asUser, connectionEnv, programs } from '../databases/postgresql.js';
import { shellWord, walDir } from '../databases/postgresql-pitr.js';
import { Exit, RespaldoError, type ExitCode } from '../errors.js';
import { capture, lastLines, runTool } from '../exec.js';
import { pitrRepository } from './wal-push.js';

export interface SetupPitrOptions {
  config: string;
  repo: string | undefined;
  apply: boolean;
}

/** The settings, in the order postgresql.conf would carry them. */
export function pitrSettings(configFile: string, repo: string, archiveTimeout = 300): [string, string][] {
  const agent = `${shellWord(process.execPath)} ${shellWord(agentScript())}`;
  return [
    ['wal_level', 'replica'],
    ['archive_mode', 'on'],
    ['archive_command', `${agent} wal-push --config ${shellWord(configFile)} --repo ${shellWord(repo)} %p %f`],
    // A quiet server still closes a segment this often, so the archive is never more than this behind.
    ['archive_timeout', String(archiveTimeout)],
  ];
}

/** The agent's own script, by its real path: what archive_command runs. */
const agentScript = () => realpathSync(process.argv[1]!);

const literal = (v: string) => `'${v.replaceAll("'", "''")}'`;

export async function runSetupPitr(ctx: Context, opts: SetupPitrOptions): Promise<ExitCode> {
  const config = await loadConfig(opts.config, ctx.cwd);
  const { repo, store, target } = pitrRepository(config, opts.repo, 'db setup-pitr');
  const configFile = resolve(config.file);
  const settings = pitrSettings(configFile, repo.name);
  const archive = walDir(store);
  const lines = settings.map(([k, v]) => `${k} = ${/^[a-z0-9]+$/.test(v) ? v : literal(v)}`);
  if (!opts.apply) {
    ctx.reporter.result(
      [
        `# postgresql.conf of the server of ${repo.name} (or: respaldo db setup-pitr --repo ${repo.name} --apply)`,
        ...lines,
        '',
        `# The archive: ${archive}`,
        '#   the server\'s user (postgres) must be able to write there, and to read the host config;',
        '#   --apply creates it for that user.',
        '# archive_mode takes effect only after a restart of the server (systemctl restart postgresql).',
        '# The user respaldo connects as needs the REPLICATION attribute for the nightly base backup.',
      ].join('\n'),
      { settings: Object.fromEntries(settings), archive, restart: true },
    );
    return Exit.ok;
  }

  const { env, cleanup } = await connectionEnv(repo, ctx.env);
  try {
    const bin = await programs(repo);
    const psql = (sql: string) =>
      capture(bin('psql'), ['-X', '-A', '-t', '-w', '-v', 'ON_ERROR_STOP=1', '-c', sql], { env: { ...env, PGDATABASE: repo.databases![0]! }, signal: ctx.signal }).then(
        (b) => b.toString().trim(),
        (e: unknown) => {
          const stderr = (e as { result?: { stderr: string } }).result?.stderr ?? String(e);
          throw new RespaldoError(`cannot change the settings of the PostgreSQL server of ${repo.name}: ${lastLines(stderr, 2)}`, {
            exitCode: Exit.nothing,
            hint: 'ALTER SYSTEM needs a superuser; run it as one, or put the lines that "respaldo db setup-pitr" prints into postgresql.conf yourself',
          });
        },
      );

    // The archive folder, owned by the server's user, reachable through the repository's folder.
    await target.check();
    await store.prepare();
    for (const sub of ['snapshots', 'incomplete']) {
      await mkdir(join(store.base, sub), { recursive: true, mode: 0o700 });
      await chmod(join(store.base, sub), 0o700);
    }
    await mkdir(archive, { recursive: true, mode: 0o700 });
    const dataDir = await psql('SHOW data_directory');
    const owner = await stat(dataDir).catch(() => undefined);
    // As root, the archive is given to the server's user, who runs archive_command.
    const serverUser = process.getuid?.() === 0 ? owner : undefined;
    if (serverUser) {
      // Others may pass through the repository's folder (not list it) to reach the archive;
      // the snapshots stay 0700.
      await chmod(store.base, 0o711);
      await chmod(join(store.base, '..'), 0o711);
      await chown(join(store.base, 'archive'), serverUser.uid, serverUser.gid);
      await chown(archive, serverUser.uid, serverUser.gid);
    }
    for (const [k, v] of settings) await psql(`ALTER SYSTEM SET ${k} = ${literal(v)}`);
    await psql('SELECT pg_reload_conf()');
    await new Promise((r) => setTimeout(r, 500));
    const pending = (await psql('SELECT name FROM pg_settings WHERE pending_restart ORDER BY 1')).split('\n').filter(Boolean);
    const current = await psql("SELECT current_setting('archive_mode')");
    const restart = pending.length > 0 || current !== 'on';
    // The server's user runs archive_command: it must be able to run the agent and read the config.
    let reach: string | undefined;
    if (serverUser) {
      const as = asUser(serverUser);
      const tried = await runTool(as.program, [...as.prefix, process.execPath, agentScript(), 'db', 'setup-pitr', '--config', configFile, '--repo', repo.name]);
      if (tried.code !== 0) reach = `WARNING: the server's user (uid ${serverUser.uid}) cannot run respaldo with this config (${lastLines(tried.stderr, 1)}): make the agent's install and ${configFile} readable to it, and every folder above them passable (chmod o+x); until then every archive_command fails and PostgreSQL keeps the WAL`;
    }
    ctx.reporter.result(
      [
        `set with ALTER SYSTEM (postgresql.auto.conf of ${dataDir}):`,
        ...lines.map((l) => `  ${l}`),
        `archive: ${archive}${owner ? ` (owned by uid ${owner.uid})` : ''}`,
        ...(reach ? [reach] : []),
        restart ? `RESTART NEEDED: ${pending.length ? pending.join(', ') : 'archive_mode'} take(s) effect only after a restart of the server (systemctl restart postgresql)` : 'in effect now: no restart needed',
      ].join('\n'),
      { settings: Object.fromEntries(settings), archive, restart, pending, warning: reach ?? null },
    );
    return Exit.ok;
  } finally {
    await cleanup();
  }
}

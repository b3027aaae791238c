#!/usr/bin/env node
/**
 * respaldo database benchmark: each engine's nightly backup against the plain tool a
 * hand-written cron job would run, and PostgreSQL point-in-time recovery against
 * pgBackRest, on generated databases, in one run. See bench/README.md.
 *
 *   node bench/db.mjs [--scale 1] [--only postgresql,mariadb,sqlite,pitr] [--work bench/work-db]
 *
 * Scale 1: PostgreSQL and MariaDB databases of about 1 GB, SQLite of 200 MB, and for
 * point-in-time recovery a pgbench database of about 750 MB and a "day" of 200,000 pgbench
 * transactions. Needs root (the servers run as their users through setpriv), PostgreSQL 15,
 * MariaDB, sqlite3, pgBackRest and GNU time (apt-get install -y postgresql mariadb-server
 * sqlite3 pgbackrest time), and a built respaldo (npx tsc -p .). Throwaway servers only, on
 * Unix sockets in the work folder: the machine's own servers are not touched.
 */
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, chownSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PG_BIN = '/usr/lib/postgresql/15/bin';
const MiB = 1024 * 1024;
const ALL = ['postgresql', 'mariadb', 'sqlite', 'pitr'];
// Rounds of each engine's nightly backup, the plain tool and respaldo taking turns; the
// report takes the medians. One run varies by ±20% on this VM (more for SQLite's half-second
// copy), which is twice the goal.
const ROUNDS = { postgresql: 3, mariadb: 3, sqlite: 5 };

const { values: opt } = parseArgs({
  options: {
    scale: { type: 'string', default: '1' },
    only: { type: 'string', default: ALL.join(',') },
    work: { type: 'string', default: join(REPO, 'bench', 'work-db') },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (opt.help) {
  process.stdout.write('usage: node bench/db.mjs [--scale N] [--only postgresql,mariadb,sqlite,pitr] [--work DIR]\n');
  process.exit(0);
}
const SCALE = Number(opt.scale);
const ONLY = opt.only.split(',');
const WORK = resolve(opt.work);
const CLI = join(REPO, 'dist', 'agent', 'main.js');

function fail(message) {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}
if (process.getuid() !== 0) fail('run as root: the servers run as the postgres and mysql users');
if (!existsSync(CLI)) fail(`${CLI} is missing: build respaldo first (npx tsc -p .)`);
for (const p of ['/usr/bin/time', `${PG_BIN}/postgres`, '/usr/sbin/mariadbd', '/usr/bin/sqlite3', '/usr/bin/pgbackrest'])
  if (!existsSync(p)) fail(`${p} is missing: apt-get install -y postgresql mariadb-server sqlite3 pgbackrest time`);

const t0 = Date.now();
function log(message) {
  process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(5)}s] ${message}\n`);
}

function sh(cmd, args, { env, cwd, input } = {}) {
  const r = spawnSync(cmd, args, { env: env ?? process.env, cwd, input, encoding: 'utf8', maxBuffer: 256 * MiB });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}:\n${(r.stderr || r.stdout || '').slice(-2000)}`);
  return r.stdout;
}

const ids = (user) => ({ uid: Number(sh('id', ['-u', user])), gid: Number(sh('id', ['-g', user])) });
const as = (user) => {
  const { uid, gid } = ids(user);
  return ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--'];
};
const give = (path, user) => sh('chown', ['-R', `${user}:${user}`, path]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs a command under GNU time: wall seconds, CPU seconds, peak memory (MB); its output goes to a log. */
function measure(name, argv, { env } = {}) {
  sh('sync', []);
  const logFile = join(WORK, 'logs', `${name}.log`);
  const fd = openSync(logFile, 'w');
  writeSync(fd, `$ ${argv.join(' ')}\n`);
  const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', '-o', `${logFile}.time`, ...argv], { env: env ?? process.env, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited with ${r.status ?? r.signal} (log ${logFile}):\n${readFileSync(logFile, 'utf8').slice(-2000)}`);
  const [wall, user, sys, kb] = readFileSync(`${logFile}.time`, 'utf8').trim().split('\n').at(-1).split(' ').map(Number);
  return { wall, cpu: Math.round((user + sys) * 100) / 100, peakMB: Math.round(kb / 102.4) / 10, log: readFileSync(logFile, 'utf8') };
}

const du = (path) => Number(sh('du', ['-s', '--block-size=1', path]).split('\t')[0]);

/** What `respaldo run --json` said about the repository: its repo-done event (time split by phase). */
function repoDone(output) {
  const done = output.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).find((e) => e.type === 'repo-done');
  if (!done) throw new Error(`respaldo did not finish the backup:\n${output.slice(-3000)}`);
  return done;
}

// ---------------------------------------------------------------------------------------
// Throwaway servers

class Postgres {
  constructor(dir) {
    this.dir = dir;
    this.data = join(dir, 'data');
    this.log = '';
  }
  init(settings = {}) {
    mkdirSync(this.dir, { recursive: true });
    give(this.dir, 'postgres');
    sh(as('postgres')[0], [...as('postgres').slice(1), join(PG_BIN, 'initdb'), '-D', this.data, '-U', 'postgres', '--auth=trust', '--no-instructions']);
    appendFileSync(this.data + '/postgresql.conf', Object.entries({ shared_buffers: "'256MB'", max_wal_size: "'2GB'", ...settings }).map(([k, v]) => `${k} = ${v}\n`).join(''));
  }
  get env() {
    return { ...process.env, PGHOST: this.dir, PGPORT: '5432', PGUSER: 'postgres' };
  }
  async start() {
    this.child = spawn(as('postgres')[0], [...as('postgres').slice(1), join(PG_BIN, 'postgres'), '-D', this.data, '-k', this.dir, '-c', 'listen_addresses=', '-p', '5432'], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child.stderr.on('data', (c) => (this.log = (this.log + c).slice(-20000)));
    for (let i = 0; i < 600; i++) {
      if (spawnSync(join(PG_BIN, 'pg_isready'), ['-q', '-h', this.dir]).status === 0) return;
      await sleep(100);
    }
    throw new Error(`PostgreSQL in ${this.data} did not start:\n${this.log}`);
  }
  async stop() {
    if (!this.child || this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGINT');
    await exited;
  }
  sql(sql, db = 'postgres') {
    return sh('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', db, '-c', sql], { env: this.env }).trim();
  }
}

class MariaDB {
  constructor(dir) {
    this.dir = dir;
    this.data = join(dir, 'data');
    this.socket = join(dir, 's.sock');
  }
  init() {
    mkdirSync(join(this.dir, 'binlog'), { recursive: true });
    give(this.dir, 'mysql');
    sh('mariadb-install-db', ['--no-defaults', `--datadir=${this.data}`, '--user=mysql', '--auth-root-authentication-method=normal', '--skip-test-db']);
  }
  async start() {
    const args = [
      '--no-defaults',
      `--datadir=${this.data}`,
      `--socket=${this.socket}`,
      '--skip-networking',
      '--user=mysql',
      `--log-bin=${join(this.dir, 'binlog', 'mysql-bin')}`,
      '--server-id=1',
      '--binlog-format=ROW',
      '--innodb-buffer-pool-size=512M',
      '--innodb-log-file-size=512M',
      '--innodb-flush-log-at-trx-commit=2',
      `--pid-file=${join(this.dir, 'pid')}`,
      `--log-error=${join(this.dir, 'error.log')}`,
    ];
    this.child = spawn('/usr/sbin/mariadbd', args, { stdio: 'ignore' });
    for (let i = 0; i < 600; i++) {
      if (spawnSync('mariadb-admin', ['--no-defaults', `--socket=${this.socket}`, '-uroot', 'ping'], { stdio: 'ignore' }).status === 0) return;
      await sleep(100);
    }
    throw new Error(`mariadbd did not start: ${readFileSync(join(this.dir, 'error.log'), 'utf8').slice(-2000)}`);
  }
  async stop() {
    if (!this.child || this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    await exited;
  }
  sql(sql, db) {
    return sh('mariadb', ['--no-defaults', `--socket=${this.socket}`, '-uroot', '-N', '-B', ...(db ? [db] : []), '-e', sql]).trim();
  }
}

// ---------------------------------------------------------------------------------------
// respaldo deployments

const GIT_ID = ['-c', 'user.name=bench', '-c', 'user.email=bench@example.invalid', '-c', 'commit.gpgsign=false', '-c', 'init.defaultBranch=main'];

/** A respaldo host in `dir` protecting the given repositories (YAML lines). */
function deploy(dir, repositories) {
  mkdirSync(join(dir, 'target'), { recursive: true });
  mkdirSync(join(dir, 'records', 'policy'), { recursive: true });
  sh('git', [...GIT_ID, 'init', '--quiet', join(dir, 'records')]);
  writeFileSync(join(dir, 'records/policy/allowed_signers'), '# bench\n');
  writeFileSync(join(dir, 'records/.gitattributes'), '* -text\n');
  sh('git', [...GIT_ID, 'add', '.'], { cwd: join(dir, 'records') });
  sh('git', [...GIT_ID, 'commit', '--quiet', '-m', 'policy'], { cwd: join(dir, 'records') });
  const config = join(dir, 'agent.yaml');
  writeFileSync(config, ['host: bench', 'key: keys/host.key', 'records: records', 'state: state', 'timezone: UTC', 'targets:', '  primary: target', 'repositories:', ...repositories, ''].join('\n'));
  sh('node', [CLI, 'init', '--config', config]);
  appendFileSync(join(dir, 'records/policy/allowed_signers'), readFileSync(join(dir, 'keys/host.key.pub'), 'utf8'));
  sh('git', [...GIT_ID, 'commit', '--quiet', '-am', 'trust'], { cwd: join(dir, 'records') });
  return config;
}

/** respaldo's nightly backup of one repository, timed, with its phases. */
function respaldoBackup(name, config, repo) {
  const m = measure(name, ['node', CLI, 'run', '--config', config, '--repo', repo, '--json']);
  const done = repoDone(m.log);
  return { ...m, dump: done.seconds.copy, verify: done.seconds.verify, level: done.level, bytes: done.bytes };
}

/**
 * Runs the plain tool and respaldo in turns, `ROUNDS[engine]` times, and keeps the run with
 * the median time of each (the plain tool's wall time, respaldo's dump phase).
 */
function rounds(engine, plainRun, oursRun) {
  const plains = [];
  const ours = [];
  for (let round = 1; round <= ROUNDS[engine]; round++) {
    log(`${engine}: round ${round} of ${ROUNDS[engine]}: the plain tool, then respaldo`);
    plains.push(plainRun(round));
    ours.push(oursRun(round));
  }
  const median = (runs, key) => runs.map((r) => r[key]).sort((a, b) => a - b)[Math.floor(runs.length / 2)];
  const mid = (runs, key) => runs.find((r) => r[key] === median(runs, key));
  const plain = mid(plains, 'wall');
  const our = mid(ours, 'dump');
  return {
    rounds: ROUNDS[engine],
    samples: { plain: plains.map((r) => r.wall), dump: ours.map((r) => r.dump) },
    plain: { wall: plain.wall, cpu: plain.cpu, peakMB: plain.peakMB },
    respaldo: { wall: our.wall, cpu: our.cpu, peakMB: Math.max(...ours.map((r) => r.peakMB)), dump: our.dump, verify: our.verify, level: our.level, bytes: our.bytes },
  };
}

const results = { meta: { scale: SCALE, cpus: availableParallelism(), memGiB: Math.round(totalmem() / 2 ** 30), commit: sh('git', ['-C', REPO, 'rev-parse', 'HEAD']).trim(), date: new Date().toISOString() } };

// ---------------------------------------------------------------------------------------
// The engines' nightly backups

async function postgresql() {
  const dir = join(WORK, 'postgresql');
  const server = new Postgres(join(dir, 'server'));
  server.init();
  await server.start();
  try {
    server.sql('CREATE DATABASE bench');
    server.sql('CREATE TABLE orders (id bigint PRIMARY KEY, customer int NOT NULL, item text NOT NULL, note text, created timestamptz NOT NULL)', 'bench');
    const target = 1024 * MiB * SCALE;
    let rows = 0;
    log(`postgresql: generating about ${Math.round(target / MiB)} MB`);
    while (Number(server.sql("SELECT pg_database_size('bench')")) < target) {
      const chunk = Math.max(10_000, Math.round(500_000 * Math.min(1, SCALE * 4)));
      server.sql(`INSERT INTO orders SELECT g, g % 10007, 'item ' || md5(g::text), repeat(md5((g * 31)::text), 4), now() - make_interval(secs => g) FROM generate_series(${rows + 1}, ${rows + chunk}) g`, 'bench');
      rows += chunk;
    }
    server.sql('VACUUM ANALYZE', 'bench');
    const size = Number(server.sql("SELECT pg_database_size('bench')"));
    const config = deploy(join(dir, 'respaldo'), ['  - name: pg', '    kind: database', '    engine: postgresql', `    connection: { host: ${server.dir}, user: postgres }`, '    databases: [bench]']);
    const r = rounds(
      'postgresql',
      (round) => measure(`pg-dump-${round}`, [join(PG_BIN, 'pg_dump'), '-Fc', '-f', join(dir, 'plain.dump'), 'bench'], { env: server.env }),
      (round) => respaldoBackup(`pg-respaldo-${round}`, config, 'pg'),
    );
    results.postgresql = { size, rows, ...r, plain: { ...r.plain, bytes: du(join(dir, 'plain.dump')) } };
  } finally {
    await server.stop();
  }
}

async function mariadb() {
  const dir = join(WORK, 'mariadb');
  const server = new MariaDB(join(dir, 'server'));
  server.init();
  await server.start();
  try {
    server.sql('CREATE DATABASE bench');
    server.sql('CREATE TABLE orders (id bigint PRIMARY KEY, customer int NOT NULL, item varchar(64) NOT NULL, note text, created datetime NOT NULL) ENGINE=InnoDB', 'bench');
    const target = 1024 * MiB * SCALE;
    let rows = 0;
    log(`mariadb: generating about ${Math.round(target / MiB)} MB`);
    const size = () => Number(server.sql("SELECT coalesce(sum(data_length + index_length), 0) FROM information_schema.tables WHERE table_schema = 'bench'"));
    while (size() < target) {
      const chunk = Math.max(10_000, Math.round(500_000 * Math.min(1, SCALE * 4)));
      server.sql(`INSERT INTO orders SELECT seq, seq % 10007, concat('item ', md5(seq)), repeat(md5(seq * 31), 4), now() - interval seq second FROM seq_${rows + 1}_to_${rows + chunk}`, 'bench');
      rows += chunk;
      server.sql('ANALYZE TABLE orders', 'bench');
    }
    const config = deploy(join(dir, 'respaldo'), ['  - name: maria', '    kind: database', '    engine: mariadb', `    connection: { host: ${server.socket}, user: root }`, '    databases: [bench]']);
    const dump = `mariadb-dump --no-defaults --socket='${server.socket}' -uroot --single-transaction --routines --events --triggers --master-data=2 bench | gzip > '${join(dir, 'plain.sql.gz')}'`;
    const r = rounds(
      'mariadb',
      (round) => measure(`mariadb-dump-${round}`, ['bash', '-o', 'pipefail', '-c', dump]),
      (round) => respaldoBackup(`mariadb-respaldo-${round}`, config, 'maria'),
    );
    results.mariadb = { size: size(), rows, ...r, plain: { ...r.plain, bytes: du(join(dir, 'plain.sql.gz')) } };
  } finally {
    await server.stop();
  }
}

async function sqlite() {
  const dir = join(WORK, 'sqlite');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'shop.db');
  const Database = createRequire(join(REPO, 'package.json'))('better-sqlite3');
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INTEGER NOT NULL, item TEXT NOT NULL, note TEXT, created TEXT NOT NULL); CREATE INDEX orders_customer ON orders (customer)');
  const insert = db.prepare("INSERT INTO orders VALUES (?, ?, ?, hex(randomblob(60)), datetime('now', ?))");
  const target = 200 * MiB * SCALE;
  log(`sqlite: generating about ${Math.round(target / MiB)} MB`);
  let rows = 0;
  while (db.prepare('SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()').pluck().get() < target) {
    db.transaction(() => {
      for (let i = 0; i < 50_000; i++, rows++) insert.run(rows + 1, rows % 10007, `item ${rows}`, `-${rows} seconds`);
    })();
  }
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  const config = deploy(join(dir, 'respaldo'), ['  - name: lite', '    kind: database', '    engine: sqlite', `    paths: [${file}]`]);
  const plainFile = join(dir, 'plain.db');
  const r = rounds(
    'sqlite',
    (round) => {
      rmSync(plainFile, { force: true });
      return measure(`sqlite3-backup-${round}`, ['sqlite3', file, `.backup '${plainFile}'`]);
    },
    (round) => respaldoBackup(`sqlite-respaldo-${round}`, config, 'lite'),
  );
  results.sqlite = { size: du(file), rows, ...r, plain: { ...r.plain, bytes: du(plainFile) } };
}

// ---------------------------------------------------------------------------------------
// Point-in-time recovery: respaldo and pgBackRest archive the same WAL; each restores the
// same moment after the same "day" of transactions.

async function pitr() {
  const dir = join(WORK, 'pitr');
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  const server = new Postgres(join(dir, 'server'));
  server.init({ wal_level: 'replica', archive_timeout: '60' });
  await server.start();
  const clones = [];
  try {
    server.sql('CREATE DATABASE bench');
    const scale = Math.max(1, Math.round(50 * SCALE));
    log(`pitr: pgbench -i -s ${scale}`);
    sh(join(PG_BIN, 'pgbench'), ['-i', '-q', '-s', String(scale), 'bench'], { env: server.env });
    const rdir = join(dir, 'respaldo');
    const config = deploy(rdir, ['  - name: pitr', '    kind: database', '    engine: postgresql', `    connection: { host: ${server.dir}, user: postgres }`, '    databases: [bench]', '    pitr: true', '    verify: { restore: false }']);
    chmodSync(rdir, 0o755);
    chmodSync(config, 0o644);
    const setup = sh('node', [CLI, 'db', 'setup-pitr', '--config', config, '--repo', 'pitr', '--apply', '--json']);
    const ours = JSON.parse(setup.trim().split('\n').at(-1)).data.settings.archive_command;
    // pgBackRest beside it, fed by the same archive_command.
    const pgbr = join(dir, 'pgbackrest');
    for (const sub of ['repo', 'log', 'lock', 'spool']) mkdirSync(join(pgbr, sub), { recursive: true });
    const pgbrConf = join(pgbr, 'pgbackrest.conf');
    writeFileSync(pgbrConf, ['[global]', `repo1-path=${pgbr}/repo`, `log-path=${pgbr}/log`, `lock-path=${pgbr}/lock`, `spool-path=${pgbr}/spool`, 'start-fast=y', 'log-level-console=warn', '', '[bench]', `pg1-path=${server.data}`, `pg1-socket-path=${server.dir}`, 'pg1-port=5432', ''].join('\n'));
    give(pgbr, 'postgres');
    // postgresql.auto.conf holds respaldo's line; the chain replaces it.
    server.sql(`ALTER SYSTEM SET archive_command = '${`${ours} && pgbackrest --config=${pgbrConf} --stanza=bench archive-push %p`.replaceAll("'", "''")}'`);
    await server.stop();
    await server.start();
    const pgbackrest = (...a) => sh(as('postgres')[0], [...as('postgres').slice(1), 'pgbackrest', `--config=${pgbrConf}`, '--stanza=bench', ...a]);
    pgbackrest('stanza-create');
    log('pitr: base backups (respaldo, pgBackRest)');
    const ourBackup = respaldoBackup('pitr-respaldo-backup', config, 'pitr');
    const theirBackup = measure('pitr-pgbackrest-backup', [...as('postgres'), 'pgbackrest', `--config=${pgbrConf}`, '--stanza=bench', '--type=full', 'backup']);

    const transactions = Math.round(200_000 * SCALE);
    log(`pitr: a day of work: ${transactions} pgbench transactions`);
    const lsn0 = server.sql('SELECT pg_current_wal_lsn()');
    sh(join(PG_BIN, 'pgbench'), ['-n', '-c', '2', '-j', '2', '-t', String(Math.round(transactions / 2)), 'bench'], { env: server.env });
    await sleep(1100);
    const at = new Date();
    await sleep(1100);
    server.sql('UPDATE pgbench_accounts SET abalance = abalance + 1000000 WHERE aid <= 1000', 'bench');
    const wal = Number(server.sql(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '${lsn0}')`));
    const closed = server.sql('SELECT pg_walfile_name(pg_switch_wal())');
    for (let i = 0; i < 3000 && server.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") < closed; i++) await sleep(100);
    const expected = server.sql('SELECT sum(abalance) FROM pgbench_accounts WHERE aid <= 1000', 'bench');

    const restoreDir = join(dir, 'restored');
    mkdirSync(restoreDir, { recursive: true });
    log('pitr: respaldo restore --at');
    const ourRestore = measure('pitr-respaldo-restore', ['node', CLI, 'restore', 'pitr', '--config', config, '--at', at.toISOString(), '--to', join(restoreDir, 'respaldo')]);
    log('pitr: pgbackrest restore --type=time, then the recovery');
    const target = join(restoreDir, 'pgbackrest');
    mkdirSync(target);
    give(target, 'postgres');
    chmodSync(target, 0o700);
    const started = performance.now();
    const theirRestore = measure('pitr-pgbackrest-restore', [...as('postgres'), 'pgbackrest', `--config=${pgbrConf}`, '--stanza=bench', `--pg1-path=${target}`, '--type=time', `--target=${at.toISOString().replace('T', ' ').replace('Z', '+00')}`, '--target-action=promote', 'restore']);
    const clone = new Postgres(restoreDir);
    clone.data = target;
    mkdirSync(join(restoreDir, 'sock'), { recursive: true });
    clone.dir = join(restoreDir, 'sock');
    give(clone.dir, 'postgres');
    appendFileSync(join(target, 'postgresql.auto.conf'), "archive_mode = 'off'\n");
    clones.push(clone);
    await clone.start();
    while (clone.sql('SELECT pg_is_in_recovery()') !== 'f') await sleep(100);
    const theirs = clone.sql('SELECT sum(abalance) FROM pgbench_accounts WHERE aid <= 1000', 'bench');
    await clone.stop();
    const theirTotal = Math.round((performance.now() - started) / 10) / 100;
    // respaldo's clone, started to check that both restored the same state.
    const ourClone = new Postgres(join(restoreDir, 'sock2'));
    ourClone.data = join(restoreDir, 'respaldo');
    mkdirSync(ourClone.dir, { recursive: true });
    give(ourClone.dir, 'postgres');
    clones.push(ourClone);
    await ourClone.start();
    const mine = ourClone.sql('SELECT sum(abalance) FROM pgbench_accounts WHERE aid <= 1000', 'bench');
    await ourClone.stop();
    if (mine !== theirs || mine === expected) throw new Error(`the restores differ: respaldo ${mine}, pgBackRest ${theirs}, production after the target ${expected}`);
    const archive = join(rdir, 'target', 'bench', 'pitr', 'archive', 'wal');
    results.pitr = {
      pgbenchScale: scale,
      transactions,
      walBytes: wal,
      backup: { respaldo: { wall: ourBackup.wall, peakMB: ourBackup.peakMB }, pgbackrest: { wall: theirBackup.wall, peakMB: theirBackup.peakMB } },
      restore: { respaldo: { wall: ourRestore.wall, peakMB: ourRestore.peakMB }, pgbackrest: { wall: theirTotal, restoreCommand: theirRestore.wall, peakMB: theirRestore.peakMB } },
      archive: { respaldo: du(archive), pgbackrest: du(join(pgbr, 'repo', 'archive')) },
      same: true,
    };
  } finally {
    for (const c of clones) await c.stop();
    await server.stop();
  }
}

// ---------------------------------------------------------------------------------------

const fmtMB = (b) => `${(b / MiB).toFixed(0)} MB`;
const range = (xs) => `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}`;
function report() {
  const lines = [`respaldo database benchmark, scale ${SCALE}: ${results.meta.cpus} CPUs, ${results.meta.memGiB} GiB RAM; respaldo ${results.meta.commit.slice(0, 12)}`, ''];
  lines.push('Nightly backup: the plain tool against respaldo (dump = respaldo\'s dump phase; verify = re-reading the stored copy and the test restore)');
  lines.push('Each cell the median of the rounds, the tools taking turns; "range" = fastest–slowest of plain tool / respaldo dump');
  lines.push('engine      database   plain tool                 plain s  respaldo dump s  overhead  verify s  total s  peak MB  level    rounds  range plain / dump');
  for (const [key, tool] of [['postgresql', 'pg_dump -Fc'], ['mariadb', 'mariadb-dump | gzip'], ['sqlite', 'sqlite3 .backup']]) {
    const r = results[key];
    if (!r) continue;
    const overhead = Math.round(((r.respaldo.dump - r.plain.wall) / r.plain.wall) * 1000) / 10;
    r.overhead = overhead;
    lines.push(
      `${key.padEnd(11)} ${fmtMB(r.size).padStart(8)}   ${tool.padEnd(24)} ${r.plain.wall.toFixed(2).padStart(8)}  ${r.respaldo.dump.toFixed(2).padStart(15)}  ${`${overhead > 0 ? '+' : ''}${overhead}%`.padStart(8)}  ${r.respaldo.verify.toFixed(2).padStart(8)}  ${r.respaldo.wall.toFixed(2).padStart(7)}  ${String(r.respaldo.peakMB).padStart(7)}  ${r.respaldo.level.padEnd(7)}  ${String(r.rounds).padStart(6)}  ${range(r.samples.plain)} / ${range(r.samples.dump)}`,
    );
  }
  if (results.pitr) {
    const p = results.pitr;
    lines.push('', `Point-in-time recovery: pgbench scale ${p.pgbenchScale}, a "day" of ${p.transactions} transactions (${fmtMB(p.walBytes)} of WAL), restored to a time just before its end`);
    lines.push('                          respaldo     pgBackRest 2.45');
    lines.push(`base backup (s)           ${p.backup.respaldo.wall.toFixed(2).padStart(8)}     ${p.backup.pgbackrest.wall.toFixed(2).padStart(8)}   (respaldo: base backup + pg_dump + manifest; pgBackRest: full backup, gz)`);
    lines.push(`restore to the time (s)   ${p.restore.respaldo.wall.toFixed(2).padStart(8)}     ${p.restore.pgbackrest.wall.toFixed(2).padStart(8)}   (copy, check, replay until promoted; pgBackRest restore ${p.restore.pgbackrest.restoreCommand.toFixed(2)} s + recovery)`);
    lines.push(`archive for the day       ${fmtMB(p.archive.respaldo).padStart(8)}     ${fmtMB(p.archive.pgbackrest).padStart(8)}   (respaldo: gzip -1; pgBackRest: gz, its default)`);
    lines.push('both restored the same rows (checked)');
  }
  const goal = ['postgresql', 'mariadb', 'sqlite'].filter((k) => results[k]).map((k) => `  ${results[k].overhead <= 10 ? 'PASS' : 'FAIL'}  ${k}: dump overhead ${results[k].overhead}% (goal: under 10% beyond the verification it adds)`);
  if (goal.length) lines.push('', 'Goals:', ...goal);
  return lines.join('\n');
}

async function main() {
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(join(WORK, 'logs'), { recursive: true });
  chmodSync(WORK, 0o755);
  chownSync(WORK, 0, 0);
  for (const part of ALL.filter((p) => ONLY.includes(p))) await { postgresql, mariadb, sqlite, pitr }[part]();
  const text = report();
  writeFileSync(join(WORK, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`${text}\n\nraw results: ${join(WORK, 'results.json')}; logs: ${join(WORK, 'logs')}\n`);
}

main().catch((e) => {
  process.stderr.write(`bench: ${e.stack ?? e}\n`);
  process.exit(1);
});

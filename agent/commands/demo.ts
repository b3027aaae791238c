/**
 * `respaldo demo` (`npm start`): a whole deployment in ./demo, run on embedded defaults.
 * It writes sample sources, a records repository (with a bare "remote" to push to) and a
 * host config; enrols the host and trusts its key as JAA would; backs up, changes some
 * files, backs up again; verifies every record; builds the site; and says where to look.
 */
import { createHash } from 'node:crypto';
import { appendFile, mkdir, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import type { Context } from '../context.js';
import { Exit, RespaldoError, usageError, type ExitCode } from '../errors.js';
import { capture } from '../exec.js';
import { exists } from '../fsutil.js';
import { narratingReporter } from '../report.js';
import { runInit } from './init.js';
import { runRecordsVerify } from './records-verify.js';
import { runApprove } from './approve.js';
import { runCheckpoint } from './checkpoint.js';
import { runRequestNew, type RequestNewOptions } from './request.js';
import { runRun } from './run.js';
import { buildSite } from './site.js';

export interface DemoOptions {
  dir: string;
}

const MARKER = '.respaldo-demo';
const HOST = 'demo-web01';

/** Deterministic pseudo-random bytes, so that the demo's "images" are the same every time. */
function bytes(seed: string, length: number): Buffer {
  const out = Buffer.alloc(length);
  let block = createHash('sha256').update(seed).digest();
  for (let at = 0; at < length; at += block.length) {
    block.copy(out, at);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

async function write(path: string, data: string | Buffer): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, data);
}

async function git(cwd: string, ...args: string[]): Promise<void> {
  await capture('git', ['-c', 'user.name=JAA (demo)', '-c', 'user.email=jaa@dse.example', '-c', 'commit.gpgsign=false', '-c', 'init.defaultBranch=main', ...args], { cwd });
}

/** A commit of everything staged and changed, signed with JAA's SSH key by git itself. */
async function signed(cwd: string, key: string, message: string): Promise<void> {
  await git(cwd, 'add', '--all');
  await git(cwd, '-c', 'gpg.format=ssh', '-c', `user.signingkey=${key}`, 'commit', '-S', '--quiet', '-m', message);
}

export async function runDemo(outer: Context, opts: DemoOptions): Promise<ExitCode> {
  const ctx: Context = { ...outer, reporter: narratingReporter(outer.reporter) };
  const root = resolve(ctx.cwd, opts.dir);
  const say = (text: string) => ctx.reporter.result(text, { demo: text });
  if ((await exists(root)) && !(await exists(join(root, MARKER))))
    throw usageError(`${root} exists and is not a respaldo demo`, 'remove it or choose another folder with --dir');
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  await writeFile(join(root, MARKER), 'made by respaldo demo; removed and rebuilt by the next one\n');
  const rel = (p: string) => relative(ctx.cwd, p) || '.';

  say(`respaldo demo in ${rel(root)}\n\n1. sample sources: server configuration, a web application's source code and its SQLite database, uploaded images and documents`);
  const src = join(root, 'sources');
  await write(join(src, 'etc/portal/portal.conf'), 'listen = 8080\ndatabase = portal\nlog_level = info\n');
  await write(join(src, 'etc/nginx/sites-enabled/portal'), 'server {\n  listen 80;\n  server_name portal.dse.example;\n  root /var/www/portal;\n}\n');
  await write(join(src, 'www/portal/index.php'), '<?php\nrequire __DIR__ . "/lib/app.php";\nrun();\n');
  await write(join(src, 'www/portal/lib/app.php'), '<?php\nfunction run() { echo "Portal DSE"; }\n');
  await write(join(src, 'www/portal/README.md'), '# Portal\n\nThe DSE portal.\n');
  await write(join(src, 'www/portal/notas de versión (2026).txt'), 'Spaces, accents and parentheses in names are fine.\n');
  for (let i = 1; i <= 12; i++) await write(join(src, `uploads/images/foto-${String(i).padStart(2, '0')}.jpg`), bytes(`img${i}`, 150_000 + i * 10_000));
  for (let i = 1; i <= 5; i++) await write(join(src, `uploads/documentos/oficio-${i}.pdf`), bytes(`doc${i}`, 60_000));
  await mkdir(join(src, 'db'), { recursive: true });
  const db = new Database(join(src, 'db/portal.db'));
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE pedidos (id INTEGER PRIMARY KEY, cliente TEXT NOT NULL, total REAL NOT NULL)');
  const order = db.prepare('INSERT INTO pedidos (cliente, total) VALUES (?, ?)');
  db.transaction(() => {
    for (let i = 1; i <= 500; i++) order.run(`cliente ${i}`, (i * 37) % 1000);
  })();

  say('2. a records repository (git) with a bare remote to push to; JAA makes an SSH key and anchors the trust policy with a signed commit');
  const origin = join(root, 'records-origin.git');
  const records = join(root, 'records');
  // JAA's (and the developers') workstation: their own clone of the records.
  const office = join(root, 'office');
  const jaaKey = join(root, 'keys/jaa');
  await mkdir(join(root, 'keys'), { recursive: true });
  await capture('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'jaa@dse.example', '-f', jaaKey]);
  await git(root, 'init', '--quiet', '--bare', origin);
  await git(root, 'clone', '--quiet', origin, office);
  const jaaLine = (await readFile(`${jaaKey}.pub`, 'utf8')).split(' ').slice(0, 2).join(' ');
  await write(join(office, 'policy/allowed_signers'), `# Who may sign what: agents under namespace "respaldo-record", approvers under "git".\njaa namespaces="git" ${jaaLine} JAA\n`);
  await write(join(office, '.gitattributes'), '# respaldo: records are signed byte for byte\n* -text\n');
  // The procedure the records answer to (PRO 7.5 DSE 02: its forms, their retention, its revisions).
  await write(join(office, 'policy/procedure.yaml'), await readFile(fileURLToPath(new URL('../../../records/policy/procedure.yaml', import.meta.url))));
  await signed(office, jaaKey, 'policy: JAA approves');
  await git(office, 'push', '--quiet', 'origin', 'HEAD');
  await git(root, 'clone', '--quiet', origin, records);

  const config = join(root, 'agent.yaml');
  await write(
    config,
    [
      `# The demo host's configuration (paths are relative to this file)`,
      `host: ${HOST}`,
      'key: keys/host.key',
      'records: records',
      'state: state',
      'targets:',
      '  primary: target        # JAA\'s copy: in a real deployment, a mounted disk',
      '  secondary: csc         # CSC\'s copy: in a real deployment, { url: user@host:/path, host-key: … } over SSH',
      'repositories:',
      '  - name: server-config',
      '    kind: config',
      '    paths: [sources/etc]',
      '  - name: portal',
      '    kind: source',
      '    paths: [sources/www/portal]',
      '  - name: uploads',
      '    kind: files',
      '    paths: [sources/uploads]',
      '    exclude: ["*.tmp"]',
      '  - name: portal-db',
      '    kind: database',
      '    engine: sqlite',
      '    paths: [sources/db/portal.db]',
      '# What approved requests may ask of this host: folders to back up, folders to restore into',
      'requests:',
      '  allow-paths: [sources]',
      '  restore-to: [restored]',
      '',
    ].join('\n'),
  );
  await mkdir(join(root, 'target'));
  await mkdir(join(root, 'csc'));
  const cfg = rel(config);

  say(`\n3. enrol the host\n$ respaldo init --config ${cfg}`);
  await runInit(ctx, { config, force: false });
  say('   JAA trusts the key: its public line goes into policy/allowed_signers, in a commit JAA signs');
  await git(office, 'pull', '--quiet', '--rebase');
  await appendFile(join(office, 'policy/allowed_signers'), await readFile(join(root, 'keys/host.key.pub'), 'utf8'));
  await signed(office, jaaKey, `policy: trust the agent of ${HOST}`);
  await git(office, 'push', '--quiet', 'origin', 'HEAD');

  // The people's commands run as they would at their desks: with their own name in git.
  const as = (name: string, email: string): Context => ({ ...ctx, env: { ...ctx.env, GIT_AUTHOR_NAME: name, GIT_AUTHOR_EMAIL: email, GIT_COMMITTER_NAME: name, GIT_COMMITTER_EMAIL: email } });
  const people = as('Ana López', 'ana@dse.example');
  const jaa = as('JAA', 'jaa@dse.example');
  const ask = (fields: Partial<RequestNewOptions>) =>
    runRequestNew(people, { records: office, type: 'backup', name: 'Ana López', area: 'Desarrollo web', host: HOST, repository: undefined, kind: undefined, paths: [], git: undefined, database: undefined, server: undefined, schedule: undefined, retention: undefined, snapshot: undefined, at: undefined, to: undefined, intoProduction: false, reason: undefined, why: undefined, notes: undefined, date: undefined, interactive: false, ...fields });
  const approve = (id: string) => runApprove(jaa, { records: office, id, reject: false, why: undefined, key: jaaKey, approvers: [] });
  say(`\n   a developer asks for backups on form FOR 7.5 DSE 05 (clause 4.1.1), and JAA approves them with signed commits\n$ respaldo request new --records ${rel(office)} --type backup --host ${HOST} --repository portal --kind source --path ${join(src, 'www/portal')} …\n$ respaldo approve REQ-… --records ${rel(office)} --key ${rel(jaaKey)}`);
  await ask({ repository: 'portal', kind: 'source', paths: [join(src, 'www/portal')] });
  await ask({ repository: 'uploads', kind: 'files', paths: [join(src, 'uploads')], retention: 'keep-daily=7,keep-weekly=4,keep-monthly=12' });
  await ask({ repository: 'portal-db', kind: 'database', paths: [join(src, 'db/portal.db')], schedule: '1d' });
  const year = ctx.now().getFullYear();
  for (let n = 1; n <= 3; n++) await approve(`REQ-${year}-${String(n).padStart(4, '0')}`);
  say('   server-config has no request: it is backed up all the same, and its records say "unrequested"');

  const backup = async (manual: boolean) => {
    const code = await runRun(ctx, { config, repos: [], all: true, manual, verify: undefined, progress: false });
    if (code !== Exit.ok) throw new RespaldoError(`the demo backup exited with code ${code}`, { exitCode: Exit.internal });
  };
  say(`\n4. the first backup of every repository, and its second copy at CSC (clause 4.1.6)\n$ respaldo run --config ${cfg} --all`);
  await backup(false);
  const [firstUploads] = (await readdir(join(root, 'target', HOST, 'uploads/snapshots'))).sort();

  say('\n5. a day of work: a setting changes, a page is added, a document is deleted, an order is deleted and another added');
  await writeFile(join(src, 'etc/portal/portal.conf'), 'listen = 8080\ndatabase = portal\nlog_level = debug\n');
  await write(join(src, 'www/portal/contacto.php'), '<?php\necho "Contacto";\n');
  await unlink(join(src, 'uploads/documentos/oficio-5.pdf'));
  db.prepare('DELETE FROM pedidos WHERE id = 42').run();
  order.run('cliente nuevo', 123.5);
  db.close();

  say(`\n6. a manual backup (logged as manual, clause 4.3.1): only the changed files are stored again; the database is copied whole and test-restored\n$ respaldo run --config ${cfg} --all --manual`);
  await backup(true);

  const lost = join(src, 'uploads/documentos/oficio-5.pdf');
  const restored = join(root, 'restored');
  say(
    `\n7. the deleted document is asked back (clause 4.3): a restore request, approved by JAA, carried out by the agent on its next run from the first snapshot and checked against its manifest\n$ respaldo request new --records ${rel(office)} --type restore --repository uploads --snapshot ${firstUploads} --path ${lost} --to ${rel(restored)} --reason deleted-by-mistake\n$ respaldo approve REQ-${year}-0004 --records ${rel(office)} --key ${rel(jaaKey)}\n$ respaldo run --config ${cfg}`,
  );
  await ask({ type: 'restore', repository: 'uploads', snapshot: firstUploads, paths: [lost], to: restored, reason: 'deleted-by-mistake', why: 'oficio borrado por error' });
  await approve(`REQ-${year}-0004`);
  const back = await runRun(ctx, { config, repos: [], all: false, manual: false, verify: undefined, progress: false });
  if (back !== Exit.ok) throw new RespaldoError(`the demo restore exited with code ${back}`, { exitCode: Exit.internal });

  say(`\n8. JAA anchors the head of every chain in a signed commit (so that dropping the newest records is noticed), and every record, approval and the policy's history are checked\n$ respaldo checkpoint --records ${rel(office)} --key ${rel(jaaKey)}\n$ respaldo records verify ${rel(records)}`);
  await runCheckpoint(jaa, { records: office, key: jaaKey, approvers: [] });
  await git(records, 'pull', '--quiet', '--rebase');
  const verified = await runRecordsVerify(ctx, { dir: records, config: undefined, approvers: [] });
  if (verified !== Exit.ok) throw new RespaldoError('the demo records did not verify', { exitCode: Exit.internal });

  say(`\n9. build the site from the records\n$ respaldo site build --records ${rel(records)} --out ${rel(join(root, 'site'))}`);
  await buildSite(ctx, { records, out: join(root, 'site'), cache: join(root, 'site-cache'), strict: false, now: undefined, timezone: undefined, approvers: [] });

  const firstRecord = join(records, 'hosts', HOST, String(ctx.now().getUTCFullYear()), '00000002-backup.yaml');
  say(
    [
      '',
      'Where to look:',
      `  ${rel(join(root, 'site/index.html'))}             the site: every record, genuine or not`,
      `  ${rel(join(root, 'target', HOST))}               the snapshots (unchanged files are hard links: ls -li)`,
      `  ${rel(join(root, 'csc', HOST))}                  CSC's copies, compared there before each copy record`,
      `  ${rel(restored)}                        the restored document, at its original path`,
      `  ${rel(office)}                          JAA's clone: requests/, approvals/, checkpoints/ (git log --show-signature)`,
      `  ${rel(join(records, 'hosts', HOST))}          the signed records (git log in ${rel(records)})`,
      `  respaldo status --config ${cfg}`,
      '',
      'Check a record by hand, with OpenSSH alone:',
      `  ssh-keygen -Y verify -f ${rel(join(records, 'policy/allowed_signers'))} -I ${HOST} -n respaldo-record \\`,
      `    -s ${rel(firstRecord)}.sig < ${rel(firstRecord)}`,
    ].join('\n'),
  );
  return Exit.ok;
}

/**
 * The command table (citty's defineCommand: meta, args, run). Each command's logic is a
 * function in commands/ that takes a Context; here are only the flags and how they map.
 */
import { defineCommand, type ArgsDef, type CommandDef } from 'citty';
import { runApprove } from './commands/approve.js';
import { runArchiveBinlogs } from './commands/archive-binlogs.js';
import { runCheckpoint } from './commands/checkpoint.js';
import { runRequestNew } from './commands/request.js';
import { runCron } from './commands/cron.js';
import { runDemo } from './commands/demo.js';
import { runInit } from './commands/init.js';
import { runLabel } from './commands/label.js';
import { runPrune } from './commands/prune.js';
import { runSetupPitr } from './commands/db.js';
import { runRecordsVerify } from './commands/records-verify.js';
import { runReceive } from './commands/receive.js';
import { RESTORE_REASONS, runRestore } from './commands/restore.js';
import { runRun } from './commands/run.js';
import { runSiteBuild, runSiteWatch, type SiteOptions } from './commands/site.js';
import { runStatus } from './commands/status.js';
import { runVerify } from './commands/verify.js';
import { runWalPush } from './commands/wal-push.js';
import { DEFAULT_CONFIG } from './config.js';
import type { Context } from './context.js';
import { usageError } from './errors.js';
import { VERSION } from './version.js';

const common = {
  config: { type: 'string', description: `host configuration file (default ${DEFAULT_CONFIG})`, valueHint: 'FILE' },
  json: { type: 'boolean', description: 'print JSON lines instead of text' },
} as const satisfies ArgsDef;

/** What every command's run receives from main.ts through citty's `data`. */
export interface Invocation {
  ctx: Context;
  /** Set when the terminal shows progress bars. */
  progress: boolean;
}

/** Rejects flags and arguments a command does not have: a mistyped --verfy must not be ignored at 3 a.m. */
function checkArgs(rawArgs: string[], args: ArgsDef, command: string): void {
  const names = new Set<string>(['help', 'h']);
  let positionals = 0;
  for (const [name, def] of Object.entries(args)) {
    if (def.type === 'positional') positionals++;
    else {
      names.add(name);
      for (const alias of ['alias' in def ? (def.alias ?? []) : []].flat()) names.add(alias);
    }
  }
  let seenPositionals = 0;
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i]!;
    if (arg === '--') {
      seenPositionals += rawArgs.length - i - 1;
      break;
    }
    if (arg.startsWith('-') && arg !== '-') {
      const name = arg.replace(/^--?/, '').split('=')[0]!;
      const bare = name.startsWith('no-') ? name.slice(3) : name;
      if (!names.has(name) && !names.has(bare)) throw usageError(`unknown option ${arg.split('=')[0]} for "respaldo ${command}"`, `see: respaldo ${command} --help`);
      const def = args[name] ?? args[bare];
      if (def && def.type !== 'boolean' && !arg.includes('=')) i++;
    } else seenPositionals++;
  }
  if (seenPositionals > positionals) throw usageError(`too many arguments for "respaldo ${command}"`, `see: respaldo ${command} --help`);
}

function command<const A extends ArgsDef>(name: string, description: string, args: A, run: (inv: Invocation, args: Record<string, unknown>, rawArgs: string[]) => Promise<number>): CommandDef<A> {
  return defineCommand({
    meta: { name, description },
    args,
    run: ({ rawArgs, args: parsed, data }) => {
      checkArgs(rawArgs, args, name);
      return run(data as Invocation, parsed as Record<string, unknown>, rawArgs);
    },
  });
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** Every value of an option that may be repeated (`--path a --path b`). */
function repeated(rawArgs: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i]!;
    if (arg === '--') break;
    if (arg === `--${name}` && i + 1 < rawArgs.length) out.push(rawArgs[++i]!);
    else if (arg.startsWith(`--${name}=`)) out.push(arg.slice(name.length + 3));
  }
  // Not split at commas: "Informe, enero.pdf" is one name.
  return out.filter((v) => v !== '');
}

const init = command('init', "create the host's key and write its enrolment record", { ...common, force: { type: 'boolean', description: 'replace an existing key (JAA must trust the new public line)' } }, (inv, a) =>
  runInit(inv.ctx, { config: str(a.config) ?? DEFAULT_CONFIG, force: a.force === true }),
);

const run = command(
  'run',
  'back up what is due, verify it, record it (cron runs this every hour)',
  {
    ...common,
    repo: { type: 'string', description: 'back up these repositories now, due or not (comma-separated)', valueHint: 'NAME' },
    all: { type: 'boolean', description: 'back up every repository now, due or not' },
    manual: { type: 'boolean', description: 'a person started this run (logged as manual, clause 4.3.1)' },
    verify: { type: 'enum', options: ['changed', 'full'], description: 're-read the changed files (default) or every file' },
  },
  (inv, a) =>
    runRun(inv.ctx, {
      config: str(a.config) ?? DEFAULT_CONFIG,
      repos: (str(a.repo) ?? '').split(',').filter(Boolean),
      all: a.all === true,
      manual: a.manual === true,
      verify: a.verify === 'changed' || a.verify === 'full' ? a.verify : undefined,
      progress: inv.progress,
    }),
);

const status = command('status', 'each repository: last good backup, next due time, overdue or not', { ...common }, (inv, a) => runStatus(inv.ctx, { config: str(a.config) ?? DEFAULT_CONFIG }));

const cron = command('cron', 'print the /etc/cron.d file that runs the agent every hour (and archives MariaDB binary logs every 5 minutes)', { ...common }, (inv, a) => runCron(inv.ctx, { config: str(a.config) ?? DEFAULT_CONFIG }));

const recordsVerify = command(
  'records verify',
  'check every signature and chain of a records folder (exit 3 when anything is broken)',
  {
    ...common,
    dir: { type: 'positional', required: false, description: 'records folder (default: the host config\'s, or ./records)' },
    approver: { type: 'string', description: "a pinned first approver's key fingerprint: the policy counts from a commit it signed (repeat for more; the host config's requests.approvers count too)", valueHint: 'SHA256:…' },
  },
  (inv, a, rawArgs) => runRecordsVerify(inv.ctx, { dir: str(a.dir), config: str(a.config), approvers: repeated(rawArgs, 'approver') }),
);

const siteArgs = {
  json: common.json,
  records: { type: 'string', description: 'the records folder (default ./records); in a git checkout, approvals and the policy\'s history are checked too', valueHint: 'DIR' },
  out: { type: 'string', description: 'where the site goes (default ./site-dist); replaced only by a successful build', valueHint: 'DIR' },
  cache: { type: 'string', description: 'what was already checked, by file digest (default ~/.cache/respaldo/site/…)', valueHint: 'DIR' },
  strict: { type: 'boolean', description: 'fail (exit 3) instead of building a site that marks broken records' },
  now: { type: 'string', description: 'judge schedules as of this time instead of now', valueHint: 'TIME' },
  timezone: { type: 'string', description: 'the institution\'s time zone for dates (default America/Mexico_City)', valueHint: 'ZONE' },
  approver: { type: 'string', description: "a pinned first approver's key fingerprint (repeat for more)", valueHint: 'SHA256:…' },
} as const satisfies ArgsDef;

const siteOptions = (a: Record<string, unknown>, rawArgs: string[]): SiteOptions => ({
  records: str(a.records),
  out: str(a.out),
  cache: str(a.cache),
  strict: a.strict === true,
  now: str(a.now),
  timezone: str(a.timezone),
  approvers: repeated(rawArgs, 'approver'),
});

const siteBuild = command('site build', 'build the compliance site (Astro, static files) from a records folder', siteArgs, (inv, a, rawArgs) => runSiteBuild(inv.ctx, siteOptions(a, rawArgs)));
const siteWatch = command('site watch', 'build the site, then rebuild it whenever the records change (until Ctrl-C)', siteArgs, (inv, a, rawArgs) => runSiteWatch(inv.ctx, siteOptions(a, rawArgs)));

/** The options of the people's commands, which work in a clone of the records rather than on a host. */
const people = {
  json: common.json,
  records: { type: 'string', description: 'the records folder, a git checkout (default ./records, or here)', valueHint: 'DIR' },
} as const satisfies ArgsDef;

const requestNew = command(
  'request new',
  'write a backup or restore request (FOR 7.5 DSE 05) in your clone of the records, numbered by the shared repository, committed and pushed; a terminal is asked for what the flags leave out',
  {
    ...people,
    type: { type: 'enum', options: ['backup', 'restore'], description: 'what is asked' },
    name: { type: 'string', description: 'who asks', valueHint: 'NAME' },
    area: { type: 'string', description: 'the area that asks', valueHint: 'AREA' },
    host: { type: 'string', description: 'the server', valueHint: 'HOST' },
    repository: { type: 'string', description: 'the repository\'s name', valueHint: 'NAME' },
    kind: { type: 'enum', options: ['config', 'files', 'source', 'database'], description: 'backup: what kind of data' },
    path: { type: 'string', description: 'backup: a folder or file to protect; restore: a path to bring back (repeat for more)', valueHint: 'PATH' },
    git: { type: 'string', description: 'backup: a git repository on the host (kind source)', valueHint: 'PATH' },
    database: { type: 'string', description: 'backup: a database, on --server', valueHint: 'NAME' },
    server: { type: 'string', description: 'backup: the database server, as the host configuration names it', valueHint: 'NAME' },
    schedule: { type: 'string', description: 'backup: how often, if not the procedure\'s default: 7d, 1d, or a cron expression "0 3 * * 0"', valueHint: 'EVERY' },
    retention: { type: 'string', description: 'backup: keep rules, e.g. keep-daily=7,keep-weekly=4', valueHint: 'RULES' },
    snapshot: { type: 'string', description: 'restore: the snapshot', valueHint: 'ID' },
    at: { type: 'string', description: 'restore: a point in time (UTC, 2026-11-21T17:29:00Z)', valueHint: 'TIME' },
    to: { type: 'string', description: 'restore: the folder on the host to restore into', valueHint: 'DIR' },
    'into-production': { type: 'boolean', description: 'restore: over the repository\'s own folders' },
    reason: { type: 'enum', options: [...RESTORE_REASONS], description: 'restore: why (clause 4.3)' },
    why: { type: 'string', description: 'restore: the reason in words', valueHint: 'TEXT' },
    notes: { type: 'string', description: 'anything else for JAA', valueHint: 'TEXT' },
    date: { type: 'string', description: 'the request\'s date (default today)', valueHint: 'YYYY-MM-DD' },
  },
  (inv, a, rawArgs) =>
    runRequestNew(inv.ctx, {
      records: str(a.records),
      type: str(a.type),
      name: str(a.name),
      area: str(a.area),
      host: str(a.host),
      repository: str(a.repository),
      kind: str(a.kind),
      paths: repeated(rawArgs, 'path'),
      git: str(a.git),
      database: str(a.database),
      server: str(a.server),
      schedule: str(a.schedule),
      retention: str(a.retention),
      snapshot: str(a.snapshot),
      at: str(a.at),
      to: str(a.to),
      intoProduction: a['into-production'] === true,
      reason: str(a.reason),
      why: str(a.why),
      notes: str(a.notes),
      date: str(a.date),
      interactive: process.stdin.isTTY === true && inv.progress,
    }),
);

const approver = { type: 'string', description: "a pinned first approver's key fingerprint, when the policy's first commit is not signed by an approver it lists (repeat for more)", valueHint: 'SHA256:…' } as const;

const key = { type: 'string', description: 'your SSH key, or its .pub when the private half is in ssh-agent or on a FIDO token (default: git config user.signingkey)', valueHint: 'FILE' } as const;

const approve = command(
  'approve',
  "JAA's decision on a request: writes approvals/REQ-….yaml and commits it signed with your SSH key (it counts only if the trusted policy lists the key as an approver)",
  {
    ...people,
    id: { type: 'positional', required: true, description: 'the request, REQ-YYYY-NNNN' },
    reject: { type: 'boolean', description: 'reject it (needs --why)' },
    why: { type: 'string', description: 'the reason, for the form', valueHint: 'TEXT' },
    key,
    approver,
  },
  (inv, a, rawArgs) => runApprove(inv.ctx, { records: str(a.records), id: str(a.id), reject: a.reject === true, why: str(a.why), key: str(a.key), approvers: repeated(rawArgs, 'approver') }),
);

const checkpoint = command(
  'checkpoint',
  "JAA anchors every host's chain head in a signed commit, so that deleting an agent's newest records is noticed",
  { ...people, key, approver },
  (inv, a, rawArgs) => runCheckpoint(inv.ctx, { records: str(a.records), key: str(a.key), approvers: repeated(rawArgs, 'approver') }),
);

const demo = command('demo', 'build a demo deployment in ./demo: back up, change, back up, verify, build the site', { dir: { type: 'string', description: 'where (default ./demo)', valueHint: 'DIR' } }, (inv, a) =>
  runDemo(inv.ctx, { dir: str(a.dir) ?? 'demo' }),
);

const restore = command(
  'restore',
  'bring back a snapshot, some of its paths, or a database at a point in time, checking every file against the manifest',
  {
    ...common,
    repository: { type: 'positional', required: true, description: 'the repository to restore' },
    snapshot: { type: 'string', description: 'the snapshot to restore (default: the newest); see the backup records', valueHint: 'ID' },
    at: {
      type: 'string',
      description: 'a database with point-in-time recovery: the time to bring it back to; other repositories: the newest snapshot taken by then. "2026-11-21 11:29" (in the host\'s time zone) or "2026-11-21T17:29:00Z"',
      valueHint: 'TIME',
    },
    path: { type: 'string', description: 'restore only this file or folder, by its original path (repeat for more)', valueHint: 'PATH' },
    to: { type: 'string', description: 'where to restore: a new or empty folder (files land at DIR/<original path>)', valueHint: 'DIR' },
    force: { type: 'boolean', description: 'restore files into a folder that is not empty (files of the same name are replaced; nothing else is removed)' },
    'list-window': { type: 'boolean', description: 'show the times the repository can be restored to' },
    reason: { type: 'enum', options: [...RESTORE_REASONS], description: 'why (clause 4.3; default other)' },
    why: { type: 'string', description: 'the reason in words, for the record', valueHint: 'TEXT' },
    request: { type: 'string', description: 'the FOR 7.5 DSE 05 request this restore answers', valueHint: 'REQ-YYYY-NNNN' },
    'into-production': { type: 'boolean', description: 'replace the data folder of a stopped server (the old one is kept aside); needs --confirm' },
    confirm: { type: 'string', description: 'the repository\'s name, to confirm --into-production', valueHint: 'NAME' },
  },
  (inv, a, rawArgs) =>
    runRestore(inv.ctx, {
      config: str(a.config) ?? DEFAULT_CONFIG,
      repo: str(a.repository),
      snapshot: str(a.snapshot),
      at: str(a.at),
      paths: repeated(rawArgs, 'path'),
      to: str(a.to),
      force: a.force === true,
      listWindow: a['list-window'] === true,
      reason: (RESTORE_REASONS as readonly string[]).includes(String(a.reason)) ? (a.reason as (typeof RESTORE_REASONS)[number]) : 'other',
      why: str(a.why),
      request: str(a.request),
      intoProduction: a['into-production'] === true,
      confirm: str(a.confirm),
    }),
);

const receive = command(
  'receive',
  "at CSC: check every copy that arrived against its sender's manifest and copy record, and sign a receipt (host config with receive: true)",
  { ...common },
  (inv, a) => runReceive(inv.ctx, { config: str(a.config) ?? DEFAULT_CONFIG }),
);

const label = command(
  'label',
  "print a snapshot's label (clause 4.2.2) and write it as a 100 x 60 mm sticker for the disk; --devices lists the device inventory",
  {
    ...common,
    repository: { type: 'positional', required: false, description: 'the repository' },
    snapshot: { type: 'positional', required: false, description: 'a snapshot id, or latest (the default)' },
    svg: { type: 'string', description: 'write the sticker as SVG to this file', valueHint: 'FILE' },
    pdf: { type: 'string', description: 'write the sticker as PDF to this file', valueHint: 'FILE' },
    devices: { type: 'boolean', description: 'list the storage devices of the host config instead' },
  },
  (inv, a) => runLabel(inv.ctx, { config: str(a.config) ?? DEFAULT_CONFIG, repo: str(a.repository), snapshot: str(a.snapshot), svg: str(a.svg), pdf: str(a.pdf), devices: a.devices === true }),
);

const walPush = command(
  'wal-push',
  "PostgreSQL's archive_command: store one WAL file in the repository's archive (respaldo db setup-pitr prints the line)",
  {
    ...common,
    repo: { type: 'string', description: 'the repository whose archive receives the file', valueHint: 'NAME' },
    path: { type: 'positional', required: true, description: '%p: the file\'s path' },
    name: { type: 'positional', required: true, description: '%f: the file\'s name' },
  },
  (inv, a) => runWalPush(inv.ctx, { config: str(a.config) ?? DEFAULT_CONFIG, repo: str(a.repo), path: str(a.path), name: str(a.name) }),
);

const archiveBinlogs = command(
  'db archive-binlogs',
  'close the MariaDB binary log and archive every closed one not archived yet, for point-in-time recovery (cron runs it every 5 minutes)',
  {
    ...common,
    repo: { type: 'string', description: 'the repository (engine: mariadb, pitr: true)', valueHint: 'NAME' },
  },
  (inv, a) => runArchiveBinlogs(inv.ctx, { config: str(a.config) ?? DEFAULT_CONFIG, repo: str(a.repo) }),
);

const setupPitr = command(
  'db setup-pitr',
  'print (or, with --apply, set) the PostgreSQL settings that archive WAL for point-in-time recovery',
  {
    ...common,
    repo: { type: 'string', description: 'the repository (pitr: true)', valueHint: 'NAME' },
    apply: { type: 'boolean', description: 'set them with ALTER SYSTEM and create the archive folder' },
  },
  (inv, a) => runSetupPitr(inv.ctx, { config: str(a.config) ?? DEFAULT_CONFIG, repo: str(a.repo), apply: a.apply === true }),
);

const prune = command(
  'prune',
  "apply each repository's retention rules on every target: a dry run unless --apply (never the newest verified snapshot, nothing after a failed backup, never records)",
  {
    ...common,
    repo: { type: 'string', description: 'prune these repositories only (comma-separated)', valueHint: 'NAME' },
    apply: { type: 'boolean', description: 'delete, and write a prune record per repository and target (default: only show what would be deleted)' },
    manual: { type: 'boolean', description: 'a person started this prune (the record names them)' },
  },
  (inv, a) =>
    runPrune(inv.ctx, {
      config: str(a.config) ?? DEFAULT_CONFIG,
      repos: (str(a.repo) ?? '').split(',').filter(Boolean),
      apply: a.apply === true,
      manual: a.manual === true,
    }),
);

const verify = command(
  'verify',
  'check the stored snapshots on either target against their manifests (bit rot, a lost or tampered file) and record it; exit 3 when one does not match',
  {
    ...common,
    repository: { type: 'positional', required: false, description: 'the repository to verify (or --all)' },
    all: { type: 'boolean', description: 'verify every repository' },
    target: { type: 'enum', options: ['primary', 'secondary'], description: 'only this target (default: both)' },
    'read-data': { type: 'boolean', description: "read every file's bytes too (default: list the folders and match the manifests and summaries only)" },
    'read-data-subset': { type: 'string', description: 'read the next share of the files, e.g. 5%: successive runs read every file (the rotation respaldo run advances too)', valueHint: 'N%' },
    manual: { type: 'boolean', description: 'a person started this check (the record names them)' },
  },
  (inv, a) =>
    runVerify(inv.ctx, {
      config: str(a.config) ?? DEFAULT_CONFIG,
      repos: str(a.repository) ? [str(a.repository)!] : [],
      all: a.all === true,
      target: a.target === 'primary' || a.target === 'secondary' ? a.target : undefined,
      readData: a['read-data'] === true,
      subset: str(a['read-data-subset']),
      manual: a.manual === true,
    }),
);

export const main = defineCommand({
  meta: { name: 'respaldo', version: VERSION, description: 'backups, and proof of backups' },
  subCommands: {
    init,
    run,
    status,
    cron,
    records: defineCommand({ meta: { name: 'records', description: 'the records folder' }, subCommands: { verify: recordsVerify } }),
    site: defineCommand({ meta: { name: 'site', description: 'the compliance site' }, subCommands: { build: siteBuild, watch: siteWatch } }),
    request: defineCommand({ meta: { name: 'request', description: 'requests on form FOR 7.5 DSE 05' }, subCommands: { new: requestNew } }),
    approve,
    checkpoint,
    restore,
    receive,
    label,
    prune,
    verify,
    'wal-push': walPush,
    db: defineCommand({ meta: { name: 'db', description: 'database servers' }, subCommands: { 'setup-pitr': setupPitr, 'archive-binlogs': archiveBinlogs } }),
    demo,
  },
});

export const EXIT_CODES_HELP = `Exit codes:
  0    done
  1    internal error
  2    usage or configuration error
  3    partly done: some repositories failed, each failure recorded (records verify: something is broken)
  4    nothing could be done or recorded
  11   another run holds the lock
  130  interrupted`;

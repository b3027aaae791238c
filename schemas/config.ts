/**
 * The host configuration: one YAML file per server (default /etc/respaldo/agent.yaml),
 * written by its sysadmin. It names what must never go into git: local paths and
 * connection details. Relative paths are relative to the file's own folder.
 */
import { Cron } from 'croner';
import { z } from 'zod';
import { duration, hostName, percent, repositoryName } from './common.js';

/** `{ every: 7d }` or `{ cron: "0 3 * * 0" }`; absent means the kind's default from the procedure. */
export const schedule = z.union([
  z.object({ every: duration }).strict(),
  z
    .object({
      cron: z.string().refine(isCronExpression, {
        message: 'a cron expression has five fields: minute hour day-of-month month day-of-week, e.g. "0 3 * * 0"',
      }),
    })
    .strict(),
]);
export type Schedule = z.infer<typeof schedule>;

function isCronExpression(expr: string): boolean {
  if (expr.trim().split(/\s+/).length !== 5) return false;
  try {
    new Cron(expr, { paused: true });
    return true;
  } catch {
    return false;
  }
}

/**
 * Verification settings. `level: changed` re-reads the files this snapshot stored anew;
 * `full` re-reads every file. The size thresholds implement clause 4.2.1: the total
 * size is compared with the previous snapshot and a larger change is a warning.
 * `reread-within`: every stored file, on each target, is read back and matched against its
 * manifest at least once within this long (`respaldo run` reads a share of them each day,
 * see agent/at-rest.ts); `never` turns that off. Default 30d.
 */
export const verifySettings = z
  .object({
    level: z.enum(['changed', 'full']).optional(),
    'shrink-warning': percent.optional(),
    'growth-warning': percent.optional(),
    'reread-within': z.union([z.literal('never'), duration]).optional(),
  })
  .strict();
export type VerifySettings = z.infer<typeof verifySettings>;

/** `user@host:/path` (or `host:/path`, `user@[::1]:/path`): an rsync destination over SSH. */
const SSH_URL_RE = /^(?:([A-Za-z0-9._][A-Za-z0-9._-]*)@)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):(\/.*)$/;

/** The pieces of an SSH target's url; undefined when it is not one. */
export function parseSshUrl(url: string): { user: string | undefined; host: string; path: string } | undefined {
  const m = SSH_URL_RE.exec(url);
  if (!m) return undefined;
  return { user: m[1], host: m[2]!.replace(/^\[|\]$/g, ''), path: m[3]! };
}

/** `rsync://[user@]host[:port]/module[/path]`: a module of an rsync daemon. */
const RSYNC_URL_RE = /^rsync:\/\/(?:([A-Za-z0-9._][A-Za-z0-9._-]*)@)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*)(?::(\d{1,5}))?\/([A-Za-z0-9._][A-Za-z0-9._-]*)((?:\/[^/]+)*)\/?$/;

/**
 * The pieces of an rsync daemon target's url; undefined when it is not one. `path` is the
 * folder inside the module ("" for the module's top). Its names must not hold rsync's
 * wildcards (`*?[\`), which the daemon would expand, nor be `.` or `..`.
 */
export function parseRsyncUrl(url: string): { user: string | undefined; host: string; port: number | undefined; module: string; path: string } | undefined {
  const m = RSYNC_URL_RE.exec(url);
  if (!m) return undefined;
  const path = m[5] ?? '';
  if (/[*?[\\\0-\x1f]/.test(path) || path.split('/').some((p) => p === '.' || p === '..')) return undefined;
  const port = m[3] === undefined ? undefined : Number(m[3]);
  if (port !== undefined && (port < 1 || port > 65535)) return undefined;
  return { user: m[1], host: m[2]!.replace(/^\[|\]$/g, ''), port, module: m[4]!, path };
}

/** A target's fields: `url` and, over SSH, how to log in and the pinned host key. */
const remoteFields = z
  .object({
    url: z.string().min(1),
    port: z.number().int().min(1).max(65535).optional(),
    /** The private key ssh logs in with (mode 0600); default: ssh's own (~/.ssh/id_ed25519…). */
    identity: z.string().min(1).optional(),
    /** The target's host key as one public-key line ("ssh-ed25519 AAAA…"), checked out of band. */
    'host-key': z
      .string()
      .regex(/^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+=*( .*)?$/, 'a public-key line such as "ssh-ed25519 AAAAC3Nza… csc", as ssh-keyscan prints it after the host name')
      .optional(),
    /** Or a known_hosts file that holds the target's host key. */
    'known-hosts': z.string().min(1).optional(),
    /** rsync daemon targets: a file holding the module's password alone (mode 0600). */
    'password-file': z.string().min(1).optional(),
  })
  .strict();

/** The checks of an SSH or local target's spec; `whose` names its host in messages ("CSC's"). */
function checkSshSpec(spec: string | z.infer<typeof remoteFields>, url: string, whose: string, at: (message: string) => void): void {
  if (typeof spec !== 'string' && spec['password-file'] !== undefined) at(`"password-file" is for rsync daemon targets (rsync://user@host/module/path); "${url}" is not one`);
  const ssh = parseSshUrl(url);
  if (!ssh) {
    if (/^[^/]*:/.test(url)) at(`"${url}" is neither a local path nor user@host:/absolute/path`);
    else if (typeof spec !== 'string') {
      for (const field of ['port', 'identity', 'host-key', 'known-hosts'] as const) if (spec[field] !== undefined) at(`"${field}" is for SSH targets (user@host:/path); "${url}" is a local path`);
    }
    return;
  }
  if (typeof spec === 'string') at(`pin ${whose} host key: write the target as { url: ${url}, host-key: "ssh-ed25519 AAAA…" } (the key from ssh-keyscan -t ed25519 ${ssh.host}, checked out of band) or with known-hosts: FILE`);
  else if (!spec['host-key'] && !spec['known-hosts']) at(`pin ${whose} host key: add host-key: "ssh-ed25519 AAAA…" (ssh-keyscan -t ed25519 ${ssh.host}, checked out of band) or known-hosts: FILE`);
  else if (spec['host-key'] && spec['known-hosts']) at('give the host key either as host-key or in a known-hosts file, not both');
}

/** The checks of an rsync daemon target's spec. */
function checkDaemonSpec(spec: string | z.infer<typeof remoteFields>, url: string, at: (message: string) => void): void {
  if (!parseRsyncUrl(url)) at(`"${url}" is not an rsync daemon target: write it as rsync://user@host/module/path (rsync://user@host:8873/module when the daemon listens on another port than 873); the path's names may not be "." or ".." nor hold * ? [ or \\`);
  if (typeof spec !== 'string') for (const field of ['port', 'identity', 'host-key', 'known-hosts'] as const) if (spec[field] !== undefined) at(`"${field}" is for SSH targets (user@host:/path)${field === 'port' ? `; an rsync daemon's port goes in the url: rsync://host:8873/module` : ''}`);
}

/** A target's spec: a local path, `user@host:/path` over SSH with the host key pinned, or a module of an rsync daemon with its password in a file; `whose` names its host in messages. */
function targetOf(whose: string) {
  return z.union([z.string().min(1), remoteFields]).superRefine((spec, ctx) => {
    const url = typeof spec === 'string' ? spec : spec.url;
    const at = (message: string) => ctx.addIssue({ code: z.ZodIssueCode.custom, message });
    if (url.startsWith('rsync://')) checkDaemonSpec(spec, url, at);
    else checkSshSpec(spec, url, whose, at);
  });
}

/** The primary target (JAA's copy): a mounted disk or share, a host over SSH, or a NAS's rsync daemon. */
export const targetSpec = targetOf("the target's");
export type TargetSpec = z.infer<typeof targetSpec>;

/**
 * The secondary target (CSC's copy, clause 4.1.6), in the same three forms; over SSH in
 * BatchMode (never a prompt at 3 a.m.).
 */
export const secondarySpec = targetOf("CSC's");
export type SecondarySpec = z.infer<typeof secondarySpec>;
/** A number of snapshots to keep under one rule. */
const keepCount = z
  .number({ invalid_type_error: 'a whole number of snapshots, e.g. 7' })
  .int('a whole number of snapshots, e.g. 7')
  .nonnegative('a number of snapshots, 0 or more');

const KEEP_COUNTS = ['keep-last', 'keep-hourly', 'keep-daily', 'keep-weekly', 'keep-monthly', 'keep-yearly'] as const;

/**
 * Which snapshots `respaldo prune` keeps, with the keep options restic and Borg users know.
 * Per repository, or for every repository at the top of the file (a repository's own rules
 * replace the host's, they are not merged). Left out: every snapshot is kept.
 */
export const retention = z
  .object({
    /** The newest N snapshots. */
    'keep-last': keepCount.optional(),
    /** The newest snapshot of each of the last N hours (days, ISO weeks, months, years) that have one, in the host's time zone. */
    'keep-hourly': keepCount.optional(),
    'keep-daily': keepCount.optional(),
    'keep-weekly': keepCount.optional(),
    'keep-monthly': keepCount.optional(),
    'keep-yearly': keepCount.optional(),
    /** Every snapshot taken within this long before the newest one, e.g. "30d". */
    'keep-within': duration.optional(),
  })
  .strict()
  .superRefine((rules, ctx) => {
    if (Object.keys(rules).length === 0)
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'list at least one rule, e.g. { keep-daily: 7, keep-weekly: 4, keep-monthly: 12 }; leave "retention" out to keep every snapshot' });
    else if (!rules['keep-within'] && KEEP_COUNTS.every((rule) => !rules[rule]))
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'every rule is 0, which would keep the newest snapshot alone; give a rule a count above 0, or leave "retention" out to keep every snapshot' });
  });
export type Retention = z.infer<typeof retention>;

const fileRepository = z
  .object({
    name: repositoryName,
    kind: z.enum(['config', 'files', 'source']),
    paths: z.array(z.string().min(1)).min(1, 'list at least one folder or file to back up'),
    exclude: z.array(z.string().min(1)).optional(),
    schedule: schedule.optional(),
    verify: verifySettings.optional(),
    retention: retention.optional(),
  })
  .strict();

/**
 * How to reach a database server. Passwords never go into argv or the environment of the
 * tools: the agent hands them over in a temporary file (PGPASSFILE, --defaults-extra-file).
 * Left out, the engine's usual files apply: ~/.pgpass, PGPASSFILE, ~/.my.cnf, or a socket
 * with peer authentication.
 */
export const connection = z
  .object({
    /**
     * A host name or address, or (with a leading "/") the server's Unix socket: PostgreSQL's
     * socket folder (/var/run/postgresql), MariaDB's socket file (/run/mysqld/mysqld.sock).
     */
    host: z.string().min(1).optional(),
    port: z.number().int().min(1).max(65535).optional(),
    user: z.string().min(1).optional(),
    /** A file holding only the password (mode 0600, owned by the agent's user). */
    'password-file': z.string().min(1).optional(),
  })
  .strict();
export type Connection = z.infer<typeof connection>;

const databaseVerify = verifySettings.extend({
  /** Restore each dump into a throwaway instance and compare the tables' row counts (default true). */
  restore: z.boolean().optional(),
});

const databaseRepository = z
  .object({
    name: repositoryName,
    kind: z.literal('database'),
    engine: z.enum(['postgresql', 'mariadb', 'sqlite']),
    connection: connection.optional(),
    /** PostgreSQL and MariaDB: the databases to dump, each on its own. */
    databases: z.array(z.string().min(1)).min(1, 'list at least one database').optional(),
    /** SQLite: the database files. */
    paths: z.array(z.string().min(1)).min(1, 'list at least one SQLite database file').optional(),
    /** Point-in-time recovery: a base backup plus the archived logs (WAL, binary logs). */
    pitr: z.boolean().optional(),
    /** The folder of the engine's programs (pg_dump, initdb, mariadb-dump, …); default: found for the server's version, or on PATH. */
    bindir: z.string().min(1).optional(),
    schedule: schedule.optional(),
    verify: databaseVerify.optional(),
    retention: retention.optional(),
  })
  .strict();

export const repository = z.discriminatedUnion('kind', [fileRepository, databaseRepository]);
export type FileRepositoryConfig = z.infer<typeof fileRepository>;
/** A database repository; `paths` is always there once loaded (empty but for SQLite). */
export type DatabaseRepositoryConfig = Omit<z.infer<typeof databaseRepository>, 'paths'> & { paths: string[]; exclude?: undefined };
/**
 * A repository as the agent works on it. `request` is set by the agent from the approved
 * requests (agent/requests.ts), never read from the file: the approved request's number,
 * or `unrequested`.
 */
export type RepositoryConfig = (FileRepositoryConfig | DatabaseRepositoryConfig) & { request?: string };

/** A server that backup requests name (`what: { database, server }`): how to reach it stays here, never in a request. */
const serverName = z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'a server name is lowercase letters, digits, ".", "_" and "-" (e.g. main-pg)');
export const databaseServer = z
  .object({
    engine: z.enum(['postgresql', 'mariadb']),
    connection: connection.optional(),
    bindir: z.string().min(1).optional(),
  })
  .strict();
export type DatabaseServer = z.infer<typeof databaseServer>;

/** A folder named plainly: absolute, or relative to the configuration file's folder, without "." or ".." parts. */
const plainFolder = z.string().min(1).refine((p) => !p.split('/').some((part) => part === '.' || part === '..'), 'a folder without "." or ".." parts, e.g. /var/www');

/**
 * What approved requests may ask of this host (clause 4.1.1): the agent backs up every
 * approved backup request for it, within these limits, and runs every approved restore
 * request once. The request names folders and a server by name; how to reach the server,
 * and what may be read or written, stay here.
 */
export const requestSettings = z
  .object({
    /** Folders that a backup request may name, with everything under them. */
    'allow-paths': z.array(plainFolder).optional(),
    /** Folders where a restore request may write; over the repository's own folders only with into-production: true in the request. */
    'restore-to': z.array(plainFolder).optional(),
    servers: z.record(serverName, databaseServer).optional(),
    /** The first approver's key fingerprint(s), pinned: the policy counts from the first commit of it that such a key signed. */
    approvers: z.array(z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}$/, 'a key fingerprint as "ssh-keygen -lf KEY.pub" prints it, e.g. SHA256:lCWLQPY+RFo9n3ft/FBQIQypqmIkO4tU4ETWxKGP7JE')).optional(),
  })
  .strict();
export type RequestSettings = z.infer<typeof requestSettings>;

/** Printable Latin-1: what the PDF sticker's standard fonts (WinAnsiEncoding) can show, Spanish included. */
const stickerText = (what: string, max: number, example: string) =>
  z
    .string()
    .min(1, `${what} is empty; e.g. "${example}"`)
    .max(max, `${what} is at most ${max} characters, to fit on the sticker`)
    .regex(/^[\x20-\x7e\u00a0-\u00ff]+$/, `${what} is letters, digits, spaces and punctuation of Spanish or English (Latin-1, no line breaks), which the PDF sticker's standard fonts can print; e.g. "${example}"`);

/**
 * A storage device of the inventory (clause 4.2.2: the devices are labelled; 4.4: they are
 * in JAA's office). `target` says which target lives on it, so a snapshot's sticker can
 * name the disk and where it is kept.
 */
export const device = z
  .object({
    label: stickerText('a device label', 40, 'DSE-HDD-01'),
    location: stickerText('a location', 80, 'oficina de JAA'),
    capacity: z.string().regex(/^\d+(\.\d+)?\s?(MB|GB|TB|PB|MiB|GiB|TiB|PiB)$/, 'a capacity is a number and a unit, e.g. "2 TB" or "500 GB"'),
    target: z.enum(['primary', 'secondary']).optional(),
  })
  .strict();
export type DeviceConfig = z.infer<typeof device>;

export const hostConfig = z
  .object({
    host: hostName,
    key: z.string().min(1),
    records: z.string().min(1),
    state: z.string().min(1).optional(),
    timezone: z
      .string()
      .refine(isTimeZone, { message: 'an IANA time zone such as "America/Mexico_City"' })
      .optional(),
    targets: z
      .object({
        primary: targetSpec,
        secondary: secondarySpec.optional(),
      })
      .strict(),
    verify: verifySettings.optional(),
    /** The retention rules of every repository that has none of its own. */
    retention: retention.optional(),
    /**
     * This host is CSC's (clause 4.1.6): other hosts' copies arrive under its
     * targets.primary, and `respaldo receive` checks each and signs a receipt. Such a host
     * needs no repositories of its own.
     */
    receive: z.boolean().optional(),
    repositories: z.array(repository).optional(),
    /** What approved requests may ask of this host; without it, approved backup requests for it cannot be met. */
    requests: requestSettings.optional(),
    /** The storage devices: an inventory for the stickers, not used to find the targets. */
    devices: z.array(device).optional(),
  })
  .strict()
  .superRefine((config, ctx) => {
    if (!config.repositories?.length && !config.receive && !config.requests)
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['repositories'], message: 'list at least one repository to protect, or let approved requests name them (requests: { allow-paths: [/var/www] })' });
    const labels = new Map<string, number>();
    const onTarget = new Map<string, string>();
    config.devices?.forEach((d, i) => {
      const at = (field: string, message: string) => ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['devices', i, field], message });
      const key = d.label.trim().toLowerCase();
      if (labels.has(key)) at('label', `device label "${d.label}" is used twice (also devices[${labels.get(key)}]); each disk needs its own label`);
      labels.set(key, i);
      if (!d.target) return;
      if (!config.targets[d.target]) at('target', `there is no ${d.target} target in "targets"; name one of: ${Object.entries(config.targets).flatMap(([name, spec]) => (spec ? [name] : [])).join(', ')}`);
      else if (onTarget.has(d.target)) at('target', `the ${d.target} target is already on device "${onTarget.get(d.target)}"; a target lives on one device`);
      else onTarget.set(d.target, d.label);
    });
    const seen = new Set<string>();
    (config.repositories ?? []).forEach((repo, i) => {
      if (repo.kind === 'database') {
        const at = (field: string, message: string) => ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['repositories', i, field], message });
        if (repo.engine === 'sqlite') {
          if (!repo.paths) at('paths', 'an sqlite repository lists its database files in "paths"');
          if (repo.databases) at('databases', 'an sqlite repository names its database files in "paths", not "databases"');
          if (repo.connection) at('connection', 'an sqlite repository has no server to connect to; remove "connection"');
          if (repo.pitr) at('pitr', 'SQLite keeps no log of changes to archive; remove "pitr" and back it up more often instead (schedule: { every: 1h })');
        } else {
          if (!repo.databases) at('databases', `a ${repo.engine} repository names the databases to dump in "databases"`);
          if (repo.paths) at('paths', `a ${repo.engine} repository names databases in "databases" and reaches the server through "connection", not "paths"`);
        }
        const host = repo.connection?.host;
        if (repo.engine === 'mariadb' && host && !host.startsWith('/')) {
          if (/^[^:]+:\d+$/.test(host)) at('connection', `give the port in connection.port, not in connection.host: { host: ${host.split(':')[0]}, port: ${host.split(':')[1]} }`);
          else if (/\.sock$/.test(host)) at('connection', `a Unix socket is named by its absolute path, e.g. { host: /run/mysqld/mysqld.sock }; "${host}" would be taken for a host name`);
        }
      }
      const name = repo.name;
      if (name === undefined) return;
      if (seen.has(name)) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['repositories', i, 'name'], message: `repository name "${name}" is used twice; names must be unique` });
      }
      seen.add(name);
    });
  });
/** A validated host config; database repositories get `paths: []` when they have none. */
export type HostConfig = Omit<z.infer<typeof hostConfig>, 'repositories'> & { repositories: RepositoryConfig[] };

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Examples shown with a config error, keyed by the field's name, so a message can show the right form. */
export const configExamples: Record<string, string> = {
  host: 'host: web01',
  key: 'key: /etc/respaldo/host.key',
  records: 'records: /var/lib/respaldo/records',
  state: 'state: /var/lib/respaldo/state',
  timezone: 'timezone: America/Mexico_City',
  targets: 'targets:\n  primary: /mnt/respaldos',
  primary: 'targets:\n  primary: /mnt/respaldos',
  receive: 'receive: true        # CSC: copies from other hosts arrive under targets.primary',
  secondary: 'targets:\n  secondary: { url: csc@respaldos.csc.example:/srv/respaldos, identity: /etc/respaldo/csc.key, host-key: "ssh-ed25519 AAAA…" }',
  url: '  secondary: { url: csc@respaldos.csc.example:/srv/respaldos }',
  identity: '  secondary: { identity: /etc/respaldo/csc.key }',
  'host-key': '  secondary: { host-key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA… csc" }',
  'known-hosts': '  secondary: { known-hosts: /etc/respaldo/csc_known_hosts }',
  repositories:
    'repositories:\n  - name: nginx\n    kind: config\n    paths: [/etc/nginx, /etc/ssl/certs]',
  name: '  - name: portal',
  kind: '    kind: source          # config | files | source | database',
  engine: '    kind: database\n    engine: postgresql    # postgresql | mariadb | sqlite',
  connection: '    connection: { host: /var/run/postgresql, port: 5432, user: respaldo, password-file: /etc/respaldo/portal-db.pass }',
  port: '    connection: { host: db01.example, port: 5432 }',
  user: '    connection: { user: respaldo }',
  'password-file': '    connection: { password-file: /etc/respaldo/portal-db.pass }   # the password alone, mode 0600',
  databases: '    databases: [portal, portal_audit]',
  pitr: '    pitr: true',
  bindir: '    bindir: /usr/lib/postgresql/15/bin',
  restore: '    verify: { restore: true }',
  paths: '    paths: [/var/www/portal, /etc/portal.conf]',
  exclude: '    exclude: ["*.tmp", "cache/"]',
  schedule: '    schedule: { every: 7d }       # or { cron: "0 3 * * 0" }',
  every: '    schedule: { every: 7d }',
  cron: '    schedule: { cron: "0 3 * * 0" }',
  verify: 'verify: { level: changed, shrink-warning: 20%, growth-warning: 100% }',
  level: 'verify: { level: full }    # changed | full',
  'shrink-warning': 'verify: { shrink-warning: 20% }',
  'growth-warning': 'verify: { growth-warning: 100% }',
  'reread-within': 'verify: { reread-within: 30d }   # or never',
  devices: 'devices:\n  - label: DSE-HDD-01\n    location: oficina de JAA\n    capacity: 2 TB\n    target: primary',
  label: '  - label: DSE-HDD-01',
  location: '    location: oficina de JAA',
  capacity: '    capacity: 2 TB',
  target: '    target: primary       # primary | secondary: the target kept on this device',
  retention: 'retention: { keep-daily: 7, keep-weekly: 4, keep-monthly: 12 }   # also keep-last, keep-hourly, keep-yearly, keep-within: 30d',
  'keep-last': 'retention: { keep-last: 10 }',
  'keep-hourly': 'retention: { keep-hourly: 24 }',
  'keep-daily': 'retention: { keep-daily: 7 }',
  'keep-weekly': 'retention: { keep-weekly: 4 }',
  'keep-monthly': 'retention: { keep-monthly: 12 }',
  'keep-yearly': 'retention: { keep-yearly: 3 }',
  'keep-within': 'retention: { keep-within: 30d }     # m, h, d or w',
  requests: 'requests:\n  allow-paths: [/var/www, /srv]\n  restore-to: [/srv/restaurados]\n  servers: { main-pg: { engine: postgresql, connection: { host: /var/run/postgresql } } }',
  'allow-paths': 'requests: { allow-paths: [/var/www, /srv] }',
  'restore-to': 'requests: { restore-to: [/srv/restaurados] }',
  servers: 'requests:\n  servers:\n    main-pg: { engine: postgresql, connection: { host: /var/run/postgresql, user: respaldo } }',
  approvers: 'requests: { approvers: ["SHA256:lCWLQPY+RFo9n3ft/FBQIQypqmIkO4tU4ETWxKGP7JE"] }   # ssh-keygen -lf jaa.pub',
};

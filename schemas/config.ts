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
 */
export const verifySettings = z
  .object({
    level: z.enum(['changed', 'full']).optional(),
    'shrink-warning': percent.optional(),
    'growth-warning': percent.optional(),
  })
  .strict();
export type VerifySettings = z.infer<typeof verifySettings>;

/**
 * A target: a local path, `user@host:/path` over SSH, or `rsync://host/module/path`.
 * Remote targets and the second copy are parsed here so that a config written for a
 * later version fails with a clear message instead of being half understood.
 */
export const targetSpec = z.string().min(1).superRefine((spec, ctx) => {
  if (spec.startsWith('rsync://') || /^[^/]*:/.test(spec)) {
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      message: `remote targets ("${spec}") are not supported by this version of respaldo yet; use a local path (a mounted disk or share)`,
    });
  }
});

const fileRepository = z
  .object({
    name: repositoryName,
    kind: z.enum(['config', 'files', 'source']),
    paths: z.array(z.string().min(1)).min(1, 'list at least one folder or file to back up'),
    exclude: z.array(z.string().min(1)).optional(),
    schedule: schedule.optional(),
    verify: verifySettings.optional(),
  })
  .strict();

// Database sources are a separate piece of work; until they land, saying so where the
// config asks for one is better than accepting fields that would do nothing.
// (the check is in hostConfig's superRefine: a discriminated union takes plain objects only).
const databaseRepository = z.object({ kind: z.literal('database') }).passthrough();

export const repository = z.discriminatedUnion('kind', [fileRepository, databaseRepository]);
export type RepositoryConfig = z.infer<typeof fileRepository>;

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
        secondary: targetSpec
          .refine(() => false, {
            message: 'the second copy (CSC) is not supported by this version of respaldo yet; remove "secondary"',
          })
          .optional(),
      })
      .strict(),
    verify: verifySettings.optional(),
    repositories: z.array(repository).min(1, 'list at least one repository to protect'),
  })
  .strict()
  .superRefine((config, ctx) => {
    const seen = new Set<string>();
    config.repositories.forEach((repo, i) => {
      if (repo.kind === 'database') {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ['repositories', i, 'kind'],
          message: 'database repositories are not supported by this version of respaldo yet; remove this repository or back up a dump folder as kind "files"',
        });
        return;
      }
      const name = repo.name;
      if (name === undefined) return;
      if (seen.has(name)) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['repositories', i, 'name'], message: `repository name "${name}" is used twice; names must be unique` });
      }
      seen.add(name);
    });
  });
/** A validated host config; the refinement above guarantees every repository is a file-like one. */
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
  repositories:
    'repositories:\n  - name: nginx\n    kind: config\n    paths: [/etc/nginx, /etc/ssl/certs]',
  name: '  - name: portal',
  kind: '    kind: source          # config | files | source',
  paths: '    paths: [/var/www/portal, /etc/portal.conf]',
  exclude: '    exclude: ["*.tmp", "cache/"]',
  schedule: '    schedule: { every: 7d }       # or { cron: "0 3 * * 0" }',
  every: '    schedule: { every: 7d }',
  cron: '    schedule: { cron: "0 3 * * 0" }',
  verify: 'verify: { level: changed, shrink-warning: 20%, growth-warning: 100% }',
  level: 'verify: { level: full }    # changed | full',
  'shrink-warning': 'verify: { shrink-warning: 20% }',
  'growth-warning': 'verify: { growth-warning: 100% }',
};

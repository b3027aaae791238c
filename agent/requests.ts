/**
 * What JAA approved for this host (clause 4.1.1), turned into the repositories the agent
 * protects and the restores it carries out:
 *
 * - every approved backup request for the host is a repository: a folder it names must lie
 *   within the host configuration's `requests.allow-paths`, a database is reached through a
 *   server that `requests.servers` names; a repository of the same name in the host
 *   configuration supplies the local details instead;
 * - a repository in the host configuration with no approved request is still protected,
 *   and every record about it says `request: unrequested`;
 * - every approved restore request for the host that has no restore (or failure) record
 *   yet is carried out once, and only into `requests.restore-to`, or over the repository's
 *   own folders when the request says `into-production: true`.
 *
 * A request that cannot be met is named with its file and field, and not acted on.
 */
import { realpath } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { RepositoryConfig } from '../schemas/config.js';
import { approvalPath, requestPath, type BackupRequest, type FileProblem, type RestoreRequest } from '../schemas/request.js';
import type { Config } from './config.js';
import type { RecordStore } from './records.js';
import { decisionOf } from './trust.js';
import type { Trust } from '../schemas/trust.js';

export interface Mandate {
  /** The repositories to protect, each with `request` set. */
  repositories: RepositoryConfig[];
  /** Approved restore requests not carried out yet, oldest first. */
  restores: RestoreRequest[];
  /** Every approved restore request for the host, carried out or not. */
  restoreIds: Set<string>;
  /** Approved requests that cannot be met as they stand. */
  problems: (FileProblem & { request: string; repository: string })[];
}

const inside = (child: string, parent: string) => child === parent || child.startsWith(parent.endsWith('/') ? parent : `${parent}/`);

/**
 * The place a path really is: a link on the way must not lead a request out of what the
 * host allows. For a path that does not exist yet, its nearest existing folder is resolved.
 */
async function real(path: string): Promise<string> {
  const rest: string[] = [];
  for (let at = path; ; at = dirname(at)) {
    const resolved = await realpath(at).catch(() => undefined);
    if (resolved !== undefined) return join(resolved, ...rest.reverse());
    if (at === dirname(at)) return path;
    rest.push(basename(at));
  }
}

async function fromRequest(config: Config, r: BackupRequest, at: (field: string, message: string) => void): Promise<RepositoryConfig | undefined> {
  const settings = config.requests;
  const common = { name: r.repository, ...(r.schedule ? { schedule: r.schedule } : {}), ...(r.retention ? { retention: r.retention } : {}), request: r.id };
  if ('database' in r.what) {
    const server = settings?.servers?.[r.what.server];
    if (!server) {
      const known = Object.keys(settings?.servers ?? {});
      at('what.server', `"${r.what.server}" is not a server of ${r.host}: ${config.file} names ${known.length ? known.join(', ') : 'none'} under requests.servers; ask the host's sysadmin to add it, or name one of those`);
      return undefined;
    }
    return { ...common, kind: 'database', engine: server.engine, databases: [r.what.database], paths: [], ...(server.connection ? { connection: server.connection } : {}), ...(server.bindir ? { bindir: server.bindir } : {}) };
  }
  const paths = 'git' in r.what ? [r.what.git] : r.what.paths;
  const field = 'git' in r.what ? 'what.git' : 'what.paths';
  const allowed = settings?.['allow-paths'] ?? [];
  for (const [i, path] of paths.entries()) {
    const where = 'git' in r.what ? field : `${field}[${i}]`;
    const really = await real(path);
    if (!allowed.some((root) => inside(path, root) && inside(really, root)))
      at(
        where,
        `${path}${really !== path ? ` (really ${really})` : ''} is outside what ${config.file} allows requests to name on ${r.host} (requests.allow-paths: ${allowed.length ? allowed.join(', ') : 'none'}); ask the host's sysadmin to allow it, or request a folder within those`,
      );
  }
  if (r.kind === 'database' && 'paths' in r.what) return { ...common, kind: 'database', engine: 'sqlite', paths, exclude: undefined };
  if (r.kind === 'database') return undefined;
  return { ...common, kind: r.kind, paths };
}

/**
 * The restore requests this host's records answer: a restore record that names the request,
 * or a failure record of a restore that could not begin. Each is carried out (or tried) once.
 */
export async function answeredRestores(records: RecordStore): Promise<Set<string>> {
  const done = new Set<string>();
  for (const file of await records.list()) {
    if (file.type !== 'restore' && file.type !== 'failure') continue;
    const record = await records.read(file);
    if (record?.type === 'restore' && record.request) done.add(record.request);
    if (record?.type === 'failure' && record.stage === 'restore' && record.request) done.add(record.request);
  }
  return done;
}

/** Repositories and restores from the approved requests for this host, with the host configuration's. */
export async function mandateFor(config: Config, trust: Trust, records: RecordStore): Promise<Mandate> {
  const problems: Mandate['problems'] = [];
  const fromRequests = new Map<string, RepositoryConfig>();
  const restores: RestoreRequest[] = [];
  const approved = trust.requests.filter((s) => s.request && s.request.host === config.host && s.problems.length === 0 && decisionOf(trust, s.id)?.approval?.decision === 'approved');
  for (const state of approved) {
    const r = state.request!;
    if (r.type === 'restore') {
      restores.push(r);
      continue;
    }
    const found: FileProblem[] = [];
    const at = (field: string, message: string) => found.push({ path: requestPath(r.id), line: undefined, field, message });
    const local = config.repositories.find((c) => c.name === r.repository);
    let repo: RepositoryConfig | undefined;
    if (local) {
      // The host configuration holds the local details; the request is the authority and may set schedule and retention.
      if (local.kind !== r.kind) at('kind', `${r.repository} is a "${local.kind}" repository in ${config.file}, not "${r.kind}": ask anew with kind ${local.kind}, or under another repository name`);
      else repo = { ...local, ...(r.schedule ? { schedule: r.schedule } : {}), ...(r.retention ? { retention: r.retention } : {}), request: r.id };
    } else repo = await fromRequest(config, r, at);
    if (found.length || !repo) {
      problems.push(...found.map((p) => ({ ...p, request: r.id, repository: r.repository })));
      continue;
    }
    // The newest approved request for a repository is the one in force.
    fromRequests.set(r.repository, repo);
  }
  // In the host configuration's order, then those that only requests name.
  const repositories = [
    ...config.repositories.map((c) => fromRequests.get(c.name) ?? { ...c, request: 'unrequested' }),
    ...[...fromRequests.values()].filter((r) => !config.repositories.some((c) => c.name === r.name)),
  ];

  // An approval of a request for this host that does not count is said too: the request is not acted on.
  for (const a of trust.approvals) {
    const r = trust.requests.find((s) => s.id === a.id)?.request;
    if (!a.valid && r?.host === config.host)
      problems.push({ path: approvalPath(a.id), line: undefined, field: undefined, message: `does not count: ${a.reason}; ${r.type === 'backup' ? `${r.repository} is not backed up under it` : 'the restore is not carried out'}`, request: a.id, repository: r.repository });
  }

  // Restores: once each.
  const done = restores.length ? await answeredRestores(records) : new Set<string>();
  const pending: RestoreRequest[] = [];
  for (const r of restores) {
    if (done.has(r.id)) continue;
    const found: FileProblem[] = [];
    const at = (field: string, message: string) => found.push({ path: requestPath(r.id), line: undefined, field, message });
    const repo = repositories.find((c) => c.name === r.repository);
    if (!repo) at('repository', `${config.host} protects no repository "${r.repository}" (it has: ${repositories.map((c) => c.name).join(', ') || 'none'})`);
    else {
      // Production: the folders of any repository the host protects, wherever a link leads.
      const destination = await real(r.destination);
      const live = repositories.flatMap((c) => c.paths);
      const production = live.some((p) => inside(destination, p) || inside(p, destination) || inside(r.destination, p) || inside(p, r.destination));
      const restoreTo = config.requests?.['restore-to'] ?? [];
      const filesLike = !(repo.kind === 'database' && repo.pitr && r.at);
      if (production && !r['into-production'])
        at('destination', `${r.destination} is within or over folders the host protects (production); the request must say into-production: true for that`);
      else if (r['into-production'] && filesLike && r.destination !== '/')
        at('destination', `files restored into production go back to their original paths: write destination: / (each file lands at its original path under it)`);
      else if (!production && !restoreTo.some((root) => inside(r.destination, root) && inside(destination, root)))
        at('destination', `${r.destination} is outside the folders ${config.file} lets restore requests write to (requests.restore-to: ${restoreTo.length ? restoreTo.join(', ') : 'none'})`);
    }
    if (found.length) problems.push(...found.map((p) => ({ ...p, request: r.id, repository: r.repository })));
    else pending.push(r);
  }
  return { repositories, restores: pending, restoreIds: new Set(restores.map((r) => r.id)), problems };
}

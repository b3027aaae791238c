/**
 * Records go into git and onto the site; the host configuration's local paths must not
 * (DESIGN: the config holds "what must never go into git"). Text bound for a record names
 * them by their place in the config instead: `{paths[0]}`, `{target}`, `{records}`. What a
 * person reads on the terminal or in cron's mail keeps the real paths.
 */
import type { RepositoryConfig } from '../schemas/config.js';
import type { Config } from './config.js';

export type Redact = (text: string) => string;

export function pathRedactor(config: Config, repo: RepositoryConfig | undefined): Redact {
  const names: [string, string][] = [
    ...(config.targets.primary.kind === 'local' ? [[config.targets.primary.path, '{target}'] as [string, string]] : []),
    ...(config.targets.primary.kind === 'ssh'
      ? ([
          [config.targets.primary.identity, '{target.identity}'],
          [config.targets.primary.knownHosts, '{target.known-hosts}'],
        ].filter((r): r is [string, string] => r[0] !== undefined))
      : []),
    ...(config.targets.primary.kind === 'rsync' && config.targets.primary.passwordFile ? [[config.targets.primary.passwordFile, '{target.password-file}'] as [string, string]] : []),
    ...(config.targets.secondary?.kind === 'local' ? [[config.targets.secondary.path, '{secondary}'] as [string, string]] : []),
    ...(config.targets.secondary?.kind === 'ssh'
      ? ([
          [config.targets.secondary.identity, '{secondary.identity}'],
          [config.targets.secondary.knownHosts, '{secondary.known-hosts}'],
        ].filter((r): r is [string, string] => r[0] !== undefined))
      : []),
    ...(config.targets.secondary?.kind === 'rsync' && config.targets.secondary.passwordFile ? [[config.targets.secondary.passwordFile, '{secondary.password-file}'] as [string, string]] : []),
    [config.records, '{records}'],
    [config.state, '{state}'],
    [config.key, '{key}'],
    [config.file, '{config}'],
    ...(repo?.paths ?? []).map((p, i): [string, string] => [p, `{paths[${i}]}`]),
    ...(repo?.kind === 'database'
      ? ([
          [repo.bindir, '{bindir}'],
          [repo.connection?.['password-file'], '{connection.password-file}'],
          [repo.connection?.host?.startsWith('/') ? repo.connection.host : undefined, '{connection.host}'],
        ].filter((r): r is [string, string] => r[0] !== undefined))
      : []),
  ];
  // Longest first, so a path inside another is replaced by the closer name; "/" alone names nothing.
  const rules = names.filter(([p]) => p.length > 1).sort((a, b) => b[0].length - a[0].length);
  return (text) => {
    let out = text;
    for (const [path, name] of rules) out = out.split(path.replace(/\/+$/, '')).join(name);
    return out;
  };
}

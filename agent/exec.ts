/**
 * External programs: always an argument array, never a shell string; stderr's tail kept
 * for failure records; children die with the agent (a `kill -9` of the agent must not
 * leave an rsync writing into a snapshot folder that the next run is cleaning up).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface ToolResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last few KiB of stderr, for messages and failure records. */
  stderr: string;
}

export interface ToolOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  onStdout?: (chunk: Buffer) => void;
  /** Written to the program's stdin, which is then closed; without it stdin is /dev/null. */
  input?: Buffer;
}

const STDERR_TAIL = 4096;

/** Finds a program on PATH, as the shell would; undefined when it is not installed. */
export function findProgram(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (name.includes('/')) {
    try {
      accessSync(name, constants.X_OK);
      return name;
    } catch {
      return undefined;
    }
  }
  for (const dir of (env.PATH ?? '/usr/bin:/bin').split(delimiter)) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

let setpriv: string | null | undefined;

function start(program: string, args: string[], opts: ToolOptions, stdout: 'pipe' | 'ignore', stdin: 'pipe' | 'ignore' | NodeJS.ReadableStream = 'ignore'): ChildProcess {
  const env = opts.env ?? process.env;
  const path = findProgram(program, env);
  if (!path) throw Object.assign(new Error(`${program} is not installed (not found on PATH)`), { code: 'ENOENT', program });
  // PR_SET_PDEATHSIG through util-linux's setpriv: Node cannot set it itself.
  if (setpriv === undefined) setpriv = findProgram('setpriv', env) ?? null;
  const [cmd, argv] = setpriv ? [setpriv, ['--pdeathsig', 'KILL', '--', path, ...args]] : [path, args];
  return spawn(cmd, argv, { cwd: opts.cwd, env, stdio: [stdin as 'pipe', stdout, 'pipe'] });
}

/** Runs a program to completion. Rejects only when it cannot be started; exit codes are the caller's to judge. */
export function runTool(program: string, args: string[], opts: ToolOptions = {}): Promise<ToolResult> {
  let child: ChildProcess;
  try {
    child = start(program, args, opts, opts.onStdout ? 'pipe' : 'ignore', opts.input ? 'pipe' : 'ignore');
  } catch (e) {
    return Promise.reject(e);
  }
  if (opts.input) {
    // A program that exits without reading all of it closes the pipe: its exit code tells.
    child.stdin!.on('error', () => {});
    child.stdin!.end(opts.input);
  }
  return finished(child, opts);
}

/**
 * Runs two programs, the first's stdout piped into the second's stdin (`ssh a tar -c | ssh
 * b tar -x`), `input` on the first's stdin; resolves with both results. Rejects only when
 * one cannot be started (the other is then stopped).
 */
export function pipeTools(from: [string, string[]], to: [string, string[]], opts: { input?: Buffer; signal?: AbortSignal } = {}): Promise<[ToolResult, ToolResult]> {
  const common = opts.signal ? { signal: opts.signal } : {};
  let a: ChildProcess;
  let b: ChildProcess;
  try {
    a = start(from[0], from[1], common, 'pipe', opts.input ? 'pipe' : 'ignore');
  } catch (e) {
    return Promise.reject(e);
  }
  try {
    // The second reads the first's pipe itself, and this process lets go of it: when the
    // second exits early, the first gets SIGPIPE at its next write instead of waiting
    // forever for a reader.
    b = start(to[0], to[1], common, 'ignore', a.stdout!);
  } catch (e) {
    a.kill('SIGKILL');
    return Promise.reject(e);
  }
  a.stdout!.destroy();
  if (opts.input) {
    a.stdin!.on('error', () => {});
    a.stdin!.end(opts.input);
  }
  return Promise.all([finished(a, common), finished(b, common)]);
}

/** Starts a program whose stdout the caller reads as a stream (with backpressure); `done` settles when it exits. */
export function streamTool(program: string, args: string[], opts: Omit<ToolOptions, 'onStdout'> = {}): { child: ChildProcess; done: Promise<ToolResult> } {
  const child = start(program, args, opts, 'pipe');
  return { child, done: finished(child, opts) };
}

/** Starts a program that the caller talks to: its stdin and stdout are pipes (a psql session, say). */
export function sessionTool(program: string, args: string[], opts: Omit<ToolOptions, 'onStdout'> = {}): { child: ChildProcess; done: Promise<ToolResult> } {
  const child = start(program, args, opts, 'pipe', 'pipe');
  return { child, done: finished(child, opts) };
}

function finished(child: ChildProcess, opts: ToolOptions): Promise<ToolResult> {
  return new Promise((resolvePromise, reject) => {
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_TAIL);
    });
    if (opts.onStdout) child.stdout!.on('data', opts.onStdout);
    const abort = () => {
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
    };
    opts.signal?.addEventListener('abort', abort, { once: true });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      opts.signal?.removeEventListener('abort', abort);
      resolvePromise({ code, signal, stderr: stderr.trimEnd() });
    });
  });
}

/**
 * Stops a server started with streamTool: `signal` (its clean shutdown), then SIGKILL if it
 * has not exited after `graceMs`. Resolves with how it exited, undefined if it could not start.
 */
export async function stopTool(tool: { child: ChildProcess; done: Promise<ToolResult> }, signal: NodeJS.Signals, graceMs: number): Promise<ToolResult | undefined> {
  tool.child.kill(signal);
  const timer = setTimeout(() => tool.child.kill('SIGKILL'), graceMs);
  const result = await tool.done.catch(() => undefined);
  clearTimeout(timer);
  return result;
}

/** Runs a program and returns its stdout; rejects with stderr's tail when it fails. */
export async function capture(program: string, args: string[], opts: Omit<ToolOptions, 'onStdout'> = {}): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const result = await runTool(program, args, { ...opts, onStdout: (c) => chunks.push(c) });
  if (result.code !== 0) {
    const why = result.signal ? `killed by ${result.signal}` : `exit code ${result.code}`;
    throw Object.assign(new Error(`${program} failed (${why}): ${lastLines(result.stderr, 3)}`), { result });
  }
  return Buffer.concat(chunks);
}

/** The last `n` non-empty lines of a text, joined with " | " for one-line messages. */
export function lastLines(text: string, n: number): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-n)
    .join(' | ');
}

/** A stdout handler that calls `each` with every whole line (read as latin1, so any byte survives), as the chunks come. */
export function eachLine(each: (line: string) => void): (chunk: Buffer) => void {
  let pending = '';
  return (chunk) => {
    const parts = (pending + chunk.toString('latin1')).split('\n');
    pending = parts.pop()!;
    for (const line of parts) each(line);
  };
}

/** Names as a program reads them with `-0` / `--from0`: each ended by a NUL. */
export function nulList(names: Buffer[]): Buffer {
  return Buffer.concat(names.flatMap((name) => [name, NUL]));
}

/** The names of a NUL-ended list. */
export function splitNul(list: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let start = 0, end = list.indexOf(0); end >= 0; start = end + 1, end = list.indexOf(0, start)) out.push(list.subarray(start, end));
  return out;
}

const NUL = Buffer.from([0]);

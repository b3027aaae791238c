#!/usr/bin/env -S node --max-semi-space-size=1 --heap-growing-percent=20
/**
 * The entry: the only place that reads process globals, picks the output streams and
 * exits. Errors become exit codes here and nowhere else.
 */
import { setFlagsFromString } from 'node:v8';
import { renderUsage, runCommand, type CommandDef } from 'citty';
import { EXIT_CODES_HELP, main, type Invocation } from './cli.js';
import type { Context } from './context.js';
import { Exit, RespaldoError } from './errors.js';
import { cronReporter, jsonReporter, terminalReporter, type Reporter } from './report.js';
import { V8_FLAGS } from './runtime.js';
import { VERSION } from './version.js';

/** Finds the command named by the leading words of argv ("records verify"); the rest are its arguments. */
async function resolveCommand(argv: string[]): Promise<{ cmd: CommandDef; parent: CommandDef | undefined; rest: string[] }> {
  let cmd: CommandDef = main;
  let parent: CommandDef | undefined;
  let i = 0;
  while (i < argv.length) {
    const subs = (await (typeof cmd.subCommands === 'function' ? cmd.subCommands() : cmd.subCommands)) as Record<string, CommandDef> | undefined;
    const next = subs?.[argv[i]!];
    if (!next) break;
    parent = cmd;
    cmd = next;
    i++;
  }
  return { cmd, parent, rest: argv.slice(i) };
}

async function start(): Promise<number> {
  // See runtime.ts; the first line of this file must carry the same flags.
  for (const flag of V8_FLAGS) if (!process.execArgv.includes(flag)) setFlagsFromString(flag);
  const argv = process.argv.slice(2);
  if (argv[0] === '--version' || argv[0] === '-v') {
    process.stdout.write(`respaldo ${VERSION}\n`);
    return Exit.ok;
  }
  const { cmd, parent, rest } = await resolveCommand(argv);
  const help = argv.includes('--help') || argv.includes('-h');
  if (help || !cmd.run) {
    if (!help && argv.length > 0) process.stderr.write(`respaldo: unknown command "${argv.join(' ')}"\n\n`);
    process.stdout.write(`${await renderUsage(cmd, parent)}\n\n${EXIT_CODES_HELP}\n`);
    return help || argv.length === 0 ? Exit.ok : Exit.usage;
  }

  const json = argv.includes('--json');
  const tty = process.stdout.isTTY === true && process.stderr.isTTY === true;
  const reporter: Reporter = json ? jsonReporter(process.stdout) : tty ? terminalReporter(process.stdout, process.stderr) : cronReporter(process.stdout, process.stderr);
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(Exit.interrupted);
    controller.abort(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const ctx: Context = { cwd: process.cwd(), env: process.env, now: () => new Date(), reporter, signal: controller.signal };
  const invocation: Invocation = { ctx, progress: tty && !json };
  let code: number;
  try {
    // citty's nested dispatch passes no data to subcommands and drops their result: run the leaf directly.
    const { result } = await runCommand(cmd, { rawArgs: rest, data: invocation });
    code = typeof result === 'number' ? result : Exit.ok;
  } catch (e) {
    if (e instanceof RespaldoError) {
      code = e.exitCode;
      if (json) process.stdout.write(`${JSON.stringify({ type: 'error', exitCode: e.exitCode, message: e.message, hint: e.hint ?? null })}\n`);
      else process.stderr.write(`respaldo: ${e.message}\n${e.hint ? `  what to do: ${e.hint.replace(/\n/g, '\n  ')}\n` : ''}`);
    } else if ((e as { name?: string }).name === 'CLIError') {
      code = Exit.usage;
      process.stderr.write(`respaldo: ${(e as Error).message}\n  see: respaldo --help\n`);
    } else {
      code = Exit.internal;
      process.stderr.write(`respaldo: internal error: ${(e as Error).stack ?? String(e)}\n`);
    }
  }
  reporter.close();
  return code;
}

start().then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`respaldo: internal error: ${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = Exit.internal;
  },
);

/**
 * A database client (psql, mariadb) that the agent talks to query by query, in one
 * session: each query is followed by a command that prints a marker line, so the lines
 * before the marker are that query's output. On any error the client exits (psql with
 * ON_ERROR_STOP, mariadb in batch mode) and the session fails. Queries sent while another
 * runs wait their turn, in order.
 */
import { sessionTool } from '../exec.js';

export const END = '__respaldo_end__';

export class LineSession {
  private buffer = '';
  private waiting: { lines: string[]; resolve: (lines: string[]) => void; reject: (e: Error) => void } | undefined;
  private ended: Error | undefined;
  private turn: Promise<unknown> = Promise.resolve();

  /**
   * `frame` turns a query into what is written to the client's stdin, ending with the
   * command that prints END; `quit` is written when the session closes.
   */
  constructor(
    program: string,
    args: string[],
    opts: { env: NodeJS.ProcessEnv; signal: AbortSignal },
    private readonly frame: (sql: string) => string,
    private readonly quit = '',
  ) {
    this.tool = sessionTool(program, args, opts);
    this.signal = opts.signal;
    const name = program.split('/').at(-1);
    this.tool.child.stdout!.setEncoding('utf8');
    this.tool.child.stdout!.on('data', (chunk: string) => this.take(chunk));
    this.tool.child.stdin!.on('error', () => {});
    this.tool.done.then(
      (r) => this.fail(Object.assign(new Error(r.stderr || `${name} exited (code ${r.code})`), { stderr: r.stderr, exitCode: r.code })),
      (e: Error) => this.fail(e),
    );
  }

  private readonly tool: ReturnType<typeof sessionTool>;
  readonly signal: AbortSignal;

  private take(chunk: string): void {
    this.buffer += chunk;
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + 1);
      if (!this.waiting) continue;
      if (line === END) {
        const w = this.waiting;
        this.waiting = undefined;
        w.resolve(w.lines);
      } else this.waiting.lines.push(line);
    }
  }

  private fail(e: Error): void {
    this.ended ??= e;
    const w = this.waiting;
    this.waiting = undefined;
    w?.reject(e);
  }

  /** Runs SQL and returns the lines it printed. */
  query(sql: string): Promise<string[]> {
    const run = (): Promise<string[]> => {
      if (this.ended) return Promise.reject(this.ended);
      return new Promise((resolve, reject) => {
        this.waiting = { lines: [], resolve, reject };
        this.tool.child.stdin!.write(this.frame(sql));
      });
    };
    const result = this.turn.then(run, run);
    this.turn = result.catch(() => {});
    return result;
  }

  async close(): Promise<void> {
    await this.turn;
    this.tool.child.stdin!.end(this.quit);
    await this.tool.done.catch(() => {});
  }
}

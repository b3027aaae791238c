/**
 * What a database backup records: the engine and server, each database's dump, and the
 * test restore (verification level `restore`). Names of databases and tables appear here;
 * passwords and connection strings never do.
 */
import { z } from 'zod';

export const databaseEngine = z.enum(['postgresql', 'mariadb', 'sqlite']);
export type DatabaseEngine = z.infer<typeof databaseEngine>;

export const databaseDump = z
  .object({
    /** The database's name (for SQLite, its file's name). */
    name: z.string().min(1),
    /** The dump's path inside the snapshot's data/ folder. */
    file: z.string().min(1),
    /** The tool and format: `pg_dump -Fc`, `VACUUM INTO`, … */
    format: z.string().min(1),
    bytes: z.number().int().nonnegative(),
    /** Tables and their rows when the dump was taken, counted in the dump's own snapshot where the engine allows it. */
    tables: z.number().int().nonnegative(),
    rows: z.number().int().nonnegative(),
  })
  .strict();
export type DatabaseDump = z.infer<typeof databaseDump>;

export const databaseInfo = z
  .object({
    engine: databaseEngine,
    /** The server's version, e.g. "15.19"; for SQLite the library's. */
    version: z.string().min(1),
    /** Where the server was reached: "local socket, port 5432", "db01.example:5432"; for SQLite "file". */
    server: z.string().min(1),
    databases: z.array(databaseDump),
  })
  .strict();
export type DatabaseInfo = z.infer<typeof databaseInfo>;

/** The test restore: each dump loaded into a throwaway instance and checked. */
export const restoreCheck = z
  .object({
    result: z.enum(['ok', 'failed']),
    /** What the dumps were restored into, e.g. "PostgreSQL 15.19 throwaway instance (initdb, private socket)". */
    instance: z.string().min(1),
    databases: z.array(
      z
        .object({
          name: z.string().min(1),
          tables: z.number().int().nonnegative(),
          rows: z.number().int().nonnegative(),
          /** Engine checks run on the restored copy: "integrity_check: ok", "row counts: match". */
          checks: z.array(z.string()),
          /** Tables whose rows differ from the source (at most 20 named). */
          mismatches: z.array(z.string()),
        })
        .strict(),
    ),
    seconds: z.number().nonnegative(),
  })
  .strict();
export type RestoreCheck = z.infer<typeof restoreCheck>;

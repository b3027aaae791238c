/**
 * `records/policy/procedure.yaml`: the procedure PRO 7.5 DSE 02 as it states itself — its
 * header (code, title, issue and revision dates, who prepared and approved it), its roles
 * (3.0, and CSC of 4.1.6), its forms with their retention (6.0) and its revision history
 * (7.0). The site's procedure page and the forms' one-year windows are built from it.
 */
import { z } from 'zod';

const day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'a date such as 2009-10-08');

/** "1 año", "2 años", "6 meses": how long a form is kept, as the procedure words it. */
const RETENTION_RE = /^(\d+) (año|años|mes|meses)$/;

/** A retention as months: "1 año" → 12. */
export function retentionMonths(text: string): number {
  const m = RETENTION_RE.exec(text)!;
  return Number(m[1]) * (m[2]!.startsWith('año') ? 12 : 1);
}

const formCode = z.string().regex(/^FOR \d+\.\d+ [A-Z]{3} \d{2}$/, 'a form code such as "FOR 7.5 DSE 02"');

export const procedure = z
  .object({
    code: z.string().regex(/^PRO \d+\.\d+ [A-Z]{3} \d{2}$/, 'a procedure code such as "PRO 7.5 DSE 02"'),
    title: z.string().min(1),
    issued: day,
    revision: z.object({ number: z.number().int().positive(), date: day }).strict(),
    prepared_by: z.string().min(1),
    approved_by: z.string().min(1),
    pages: z.number().int().positive(),
    roles: z.array(z.object({ code: z.string().regex(/^[A-Z]+$/), name: z.string().min(1), source: z.string().min(1) }).strict()).min(1),
    forms: z.array(z.object({ code: formCode, title: z.string().min(1), retention: z.string().regex(RETENTION_RE, 'a retention such as "1 año" or "6 meses"') }).strict()).min(1),
    revisions: z.array(z.object({ number: z.number().int().positive(), description: z.string().min(1), date: day }).strict()).min(1),
  })
  .strict()
  .superRefine((p, ctx) => {
    const at = (path: (string | number)[], message: string) => ctx.addIssue({ code: z.ZodIssueCode.custom, path, message });
    p.revisions.forEach((r, i) => {
      if (r.number !== i + 1) at(['revisions', i, 'number'], `revision ${i + 1} is expected here (7.0 numbers them 1, 2, 3…), found ${r.number}`);
      if (i > 0 && r.date < p.revisions[i - 1]!.date) at(['revisions', i, 'date'], `${r.date} is before revision ${i}'s date ${p.revisions[i - 1]!.date}`);
    });
    const last = p.revisions.at(-1)!;
    if (last.number !== p.revision.number || last.date !== p.revision.date)
      at(['revision'], `the header says revision ${p.revision.number} of ${p.revision.date}, the history's last is ${last.number} of ${last.date}`);
    if (p.revisions[0]!.date !== p.issued) at(['issued'], `the first revision is of ${p.revisions[0]!.date}, the issue date ${p.issued}`);
    const seen = new Set<string>();
    p.forms.forEach((f, i) => {
      if (seen.has(f.code)) at(['forms', i, 'code'], `${f.code} is listed twice`);
      seen.add(f.code);
    });
  });
export type Procedure = z.infer<typeof procedure>;

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { procedure, retentionMonths } from './procedure.js';
import { parseFile, problemText } from './request.js';

const FILE = fileURLToPath(new URL('../records/policy/procedure.yaml', import.meta.url));

describe('records/policy/procedure.yaml', () => {
  it('holds PRO 7.5 DSE 02 as the procedure states it: header, roles, forms kept a year, seven revisions', () => {
    const parsed = parseFile('policy/procedure.yaml', readFileSync(FILE, 'utf8'), procedure);
    if (!parsed.ok) throw new Error(parsed.problems.map(problemText).join('\n'));
    const p = parsed.value;
    expect(p).toMatchObject({ code: 'PRO 7.5 DSE 02', issued: '2003-09-01', revision: { number: 7, date: '2009-10-08' }, prepared_by: 'Jefe del Departamento de Servicios Electrónicos', approved_by: 'Coordinador General' });
    expect(p.roles.map((r) => r.code)).toEqual(['JAA', 'CGDW', 'CSC']);
    expect(p.revisions.map((r) => [r.number, r.date])).toEqual([
      [1, '2003-09-01'],
      [2, '2004-06-17'],
      [3, '2004-11-17'],
      [4, '2006-11-15'],
      [5, '2007-05-24'],
      [6, '2009-02-27'],
      [7, '2009-10-08'],
    ]);
    // The forms the site renders, each kept one year (6.0).
    for (const code of ['FOR 7.5 DSE 02', 'FOR 7.5 DSE 03', 'FOR 7.5 DSE 04', 'FOR 7.5 DSE 05', 'FOR 7.5 CSC 01', 'FOR 7.5 CSC 02', 'FOR 7.5 CSC 03'])
      expect(retentionMonths(p.forms.find((f) => f.code === code)!.retention), code).toBe(12);
  });

  it('names the file, line and field of a history out of order or a header that disagrees with it', () => {
    const text = readFileSync(FILE, 'utf8').replace('  - number: 3\n', '  - number: 4\n').replace('  number: 7\n  date: 2009-10-08', '  number: 8\n  date: 2009-10-08');
    const parsed = parseFile('policy/procedure.yaml', text, procedure);
    expect(parsed.ok).toBe(false);
    const lines = parsed.ok ? [] : parsed.problems.map(problemText);
    expect(lines).toContainEqual(expect.stringMatching(/^policy\/procedure\.yaml:\d+: revisions\[2\]\.number: revision 3 is expected here/));
    expect(lines).toContainEqual(expect.stringMatching(/^policy\/procedure\.yaml:\d+: revision: the header says revision 8 of 2009-10-08, the history's last is 7/));
  });
});

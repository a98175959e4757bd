import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BACKEND_NAMES } from '../../training/backend.js';
import { PRESET_NAMES } from '../../training/config.js';
import { REPO_ROOT, runCli } from '../helpers.js';

/** A module resolve hook that prints each tfjs, Pyodide or Arrow module the process loads. */
const REPORT_HEAVY_MODULES = `data:text/javascript,${encodeURIComponent(
  'export async function resolve(specifier, context, next) {\n' +
    '  const r = await next(specifier, context);\n' +
    "  if (/node_modules\\/(@tensorflow|pyodide|apache-arrow|nodejs-polars)\\//.test(r.url)) process.stderr.write(`heavy: ${r.url}\\n`);\n" +
    '  return r;\n' +
    '}\n',
)}`;

describe('command help', () => {
  it('prints the top-level and command help without loading tfjs, Pyodide or Arrow', () => {
    const register = `data:text/javascript,${encodeURIComponent(`import { register } from 'node:module'; register(${JSON.stringify(REPORT_HEAVY_MODULES)});`)}`;
    for (const args of [['--help'], ['train', '--help'], ['eval', '--help'], ['doctor', '--help']]) {
      const res = spawnSync(process.execPath, ['--import', register, join(REPO_ROOT, 'bin', 'execwm.js'), ...args], { encoding: 'utf8' });
      expect(res.status, res.stderr).toBe(0);
      expect(res.stderr).toBe('');
    }
  });

  it('lists every tfjs backend and model preset training accepts', () => {
    const train = runCli(['train', '--help']).stdout.replace(/\s+/g, ' ');
    expect(train).toContain(`tfjs backend: ${BACKEND_NAMES.join(', ')} `);
    expect(train).toContain(`model size: ${PRESET_NAMES.join(', ')} `);
    const evalHelp = runCli(['eval', '--help']).stdout.replace(/\s+/g, ' ');
    expect(evalHelp).toContain(`tfjs backend (${BACKEND_NAMES.join(', ')})`);
  });
});

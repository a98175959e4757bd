import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The package root: the nearest folder above this file whose package.json is execwm's.
 * Works both from the sources (`src/`) and the build (`dist/src/`).
 */
function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'execwm') {
      return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error('execwm: cannot find the package root (package.json)');
    dir = parent;
  }
}

export const PACKAGE_ROOT: string = findRoot();

/** A path inside the package, e.g. `packagePath('tracer', 'tracer.py')`. */
export function packagePath(...parts: string[]): string {
  return join(PACKAGE_ROOT, ...parts);
}

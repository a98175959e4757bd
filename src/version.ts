import { readFileSync } from 'node:fs';
import { packagePath } from './paths.js';

interface PackageJson {
  version: string;
  dependencies: Record<string, string>;
}

const pkg = JSON.parse(readFileSync(packagePath('package.json'), 'utf8')) as PackageJson;

/** The execwm version, from package.json. */
export const VERSION: string = pkg.version;

/** The declared version of a dependency, from package.json. */
export function dependencyVersion(name: string): string | undefined {
  return pkg.dependencies[name];
}

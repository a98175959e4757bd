/**
 * Runs the execwm CLI from the sources (through tsx), for tests that spawn it
 * as a separate process without needing a build.
 */
import { main } from '../../src/cli.js';

process.exitCode = await main(process.argv.slice(2));

#!/usr/bin/env node
// The built CLI lives in dist/ (`npm run build`, run by `npm ci` through `prepare`).
import { main } from '../dist/src/cli.js';

// A reader that stops early (`execwm show ... | head`) closes the pipe: stop quietly, as
// Unix tools do, instead of crashing on the next write.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

process.exitCode = await main(process.argv.slice(2));

#!/usr/bin/env node
// The built CLI lives in dist/ (`npm run build`, run by `npm ci` through `prepare`).
import { main } from '../dist/src/cli.js';

process.exitCode = await main(process.argv.slice(2));

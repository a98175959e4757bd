#!/usr/bin/env node
// The built CLI lives in dist/ (`npm run build`, run by `npm ci` through `prepare`).
// First, before any wasm module is compiled: Node 20 validates wasm relaxed SIMD (the fused
// multiply-add of the training kernels) only behind a V8 flag, which this sets for the whole
// process, worker threads included. The user never passes it.
const { relaxedSimd } = await import('../dist/training/kernels/relaxed-simd.js');
relaxedSimd();
const { main } = await import('../dist/src/cli.js');

// A reader that stops early (`execwm show ... | head`) closes the pipe: stop quietly, as
// Unix tools do, instead of crashing on the next write.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

process.exitCode = await main(process.argv.slice(2));

import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import * as tf from '../../training/tf.js';
import { probeBackends, setupBackend } from '../../training/backend.js';

/** Whether an optional native binding is installed here (it is not on the reference machine). */
function installed(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}
const nativeMissing = !installed('@tensorflow/tfjs-node') && !installed('@tensorflow/tfjs-node-gpu');

describe('backend probing and setup', () => {
  it('probes every backend without throwing and always offers wasm and cpu', async () => {
    const probes = await probeBackends();
    expect(probes.map((p) => p.name)).toEqual(['node-gpu', 'node', 'wasm', 'cpu']);
    const byName = new Map(probes.map((p) => [p.name, p]));
    expect(byName.get('wasm')!.usable).toBe(true);
    expect(byName.get('wasm')!.detail).toMatch(/simd|thread/);
    expect(byName.get('cpu')!.usable).toBe(true);
  });

  it.runIf(nativeMissing)('reports the native bindings as not installed when tfjs-node is absent', async () => {
    const probes = await probeBackends();
    for (const name of ['node-gpu', 'node'] as const) {
      const probe = probes.find((p) => p.name === name)!;
      expect(probe.usable).toBe(false);
      expect(probe.detail).toBe('package not installed');
    }
  });

  it.runIf(nativeMissing)('refuses an explicitly requested native backend with the reason', async () => {
    await expect(setupBackend('node')).rejects.toThrow(/Backend node is not usable here \(node: package not installed\)/);
    await expect(setupBackend('node-gpu')).rejects.toThrow(/not installed/);
  });

  it.runIf(nativeMissing)('auto falls back to wasm and makes it the active backend', async () => {
    expect(await setupBackend('auto')).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
  });

  it('switches between explicitly requested backends', async () => {
    expect(await setupBackend('cpu')).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    expect(await setupBackend('wasm')).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
  });

  it('rejects an unknown backend name', async () => {
    await expect(setupBackend('gpu' as never)).rejects.toThrow(/Expected a backend among/);
  });
});

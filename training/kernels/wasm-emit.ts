/**
 * Writing small wasm modules from TypeScript, byte by byte: the few instructions our SIMD
 * kernels use (./gemm.ts, ./colsum.ts), and a module of functions over an imported memory — the
 * tfjs wasm backend's heap, so the kernels read and write tensors where they lie. No toolchain
 * is needed at build or run time.
 */

/** The parts of the WebAssembly JS API used here (a Node global the project's type libraries omit). */
export interface WasmMemory {
  readonly buffer: ArrayBufferLike;
}
export interface WasmModule {
  readonly __wasmModule: unique symbol;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: object) => { exports: Record<string, unknown> };
  Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
}
export const Wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

export function isWasmMemory(value: unknown): value is WasmMemory {
  return value instanceof Wasm.Memory;
}

/** True when `memory` is shared between threads (the threaded tfjs build's heap). */
export function isShared(memory: WasmMemory): boolean {
  return typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
}

/** Unsigned LEB128, as the binary format writes sizes and indices. */
export function uleb(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

/** Signed LEB128 (i32.const immediates). */
function sleb(value: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = value & 0x7f;
    value >>= 7;
    const done = (value === 0 && (byte & 0x40) === 0) || (value === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

export function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function name(text: string): number[] {
  const bytes = [...new TextEncoder().encode(text)];
  return [...uleb(bytes.length), ...bytes];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

export const I32 = 0x7f;
export const V128 = 0x7b;

/** The instructions our kernels use, as byte sequences. */
export const op = {
  get: (local: number) => [0x20, ...uleb(local)],
  set: (local: number) => [0x21, ...uleb(local)],
  tee: (local: number) => [0x22, ...uleb(local)],
  i32: (value: number) => [0x41, ...sleb(value)],
  add: [0x6a],
  sub: [0x6b],
  mul: [0x6c],
  divU: [0x6e],
  and: [0x71],
  ltU: [0x49],
  /** A loop whose body branches back with `br_if 0`. */
  loop: (body: number[]) => [0x03, 0x40, ...body, 0x0b],
  brIf: (depth: number) => [0x0d, ...uleb(depth)],
  ifElse: (then: number[], otherwise: number[]) => [0x04, 0x40, ...then, 0x05, ...otherwise, 0x0b],
  /** `if` without `else`: runs `then` when the i32 on the stack is not 0. */
  when: (then: number[]) => [0x04, 0x40, ...then, 0x0b],
  call: (func: number) => [0x10, ...uleb(func)],
  select: [0x1b],
  gtU: [0x4b],
  /** memarg: alignment hint (log2 bytes) and constant offset. */
  v128Load: (offset = 0) => [0xfd, ...uleb(0x00), 2, ...uleb(offset)],
  v128Store: (offset = 0) => [0xfd, ...uleb(0x0b), 2, ...uleb(offset)],
  v128Zero: [0xfd, ...uleb(0x0c), ...new Array<number>(16).fill(0)],
  /** One float from memory into every lane (a single broadcast load on x86). */
  v128Load32Splat: (offset = 0) => [0xfd, ...uleb(0x09), 2, ...uleb(offset)],
  f32x4Add: [0xfd, ...uleb(0xe4)],
  f32x4Sub: [0xfd, ...uleb(0xe5)],
  f32x4Mul: [0xfd, ...uleb(0xe6)],
  f32x4Div: [0xfd, ...uleb(0xe7)],
  f32x4ExtractLane: (lane: number) => [0xfd, ...uleb(0x1f), lane],
  f32Add: [0x92],
  f32Store: (offset = 0) => [0x38, 2, ...uleb(offset)],
  /** f32x4 with `value` in every lane. */
  f32x4Const: (value: number) => [0xfd, ...uleb(0x0c), ...Array.from({ length: 4 }, () => [...new Uint8Array(new Float32Array([value]).buffer)]).flat()],
  f32x4Splat: [0xfd, ...uleb(0x13)],
  /** a < b ? b : a: one instruction on x86 (f32x4.max orders NaN and −0 and takes several). */
  f32x4Pmax: [0xfd, ...uleb(0xeb)],
  f32Max: [0x97],
  /** a·b + c, fused or not (relaxed SIMD; see ./relaxed-simd.ts): operands a, b, c in stack order. */
  f32x4RelaxedMadd: [0xfd, ...uleb(0x105)],
};

/** A function of the module: `params` i32 parameters, no results. */
export interface FunctionDef {
  params: number;
  /** Local declarations after the parameters: [count, type] runs. */
  locals: [number, number][];
  /** The code, without the final `end`. */
  code: number[];
  /** Exported under this name, if given. */
  export?: string;
}

/**
 * A module of `functions` (indices in order) over an imported memory "env"."memory". `shared`:
 * a shared memory (the threaded tfjs build's), which must declare a maximum; otherwise an
 * ordinary one.
 */
export function moduleBytes(opts: { shared: boolean; functions: FunctionDef[] }): Uint8Array {
  const types = opts.functions.map((f) => [0x60, ...vec(new Array<number[]>(f.params).fill([I32])), ...vec([])]);
  const limits = opts.shared ? [0x03, ...uleb(0), ...uleb(65536)] : [0x00, ...uleb(0)];
  const exports = opts.functions.flatMap((f, i) => (f.export ? [[...name(f.export), 0x00, ...uleb(i)]] : []));
  const bodies = opts.functions.map((f) => {
    const body = [...vec(f.locals.map(([count, type]) => [...uleb(count), type])), ...f.code, 0x0b];
    return [...uleb(body.length), ...body];
  });
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, ...limits]])),
    ...section(3, vec(opts.functions.map((_, i) => uleb(i)))),
    ...section(7, vec(exports)),
    ...section(10, vec(bodies)),
  ]);
}

/** Compiled modules by name and kind of memory. */
const compiled = new Map<string, WasmModule>();

/** `build(shared)` compiled once per name and kind of memory. */
export function compileOnce(key: string, shared: boolean, build: (shared: boolean) => Uint8Array): WasmModule {
  const id = `${key}/${shared ? 'shared' : 'plain'}`;
  let module = compiled.get(id);
  if (!module) {
    module = new Wasm.Module(build(shared));
    compiled.set(id, module);
  }
  return module;
}

/** The exports of `module` instantiated over `memory`. */
export function instantiate(module: WasmModule, memory: WasmMemory): Record<string, unknown> {
  return new Wasm.Instance(module, { env: { memory } }).exports;
}

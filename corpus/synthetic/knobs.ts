/**
 * What the synthetic generator may build: the language features, the difficulty
 * knobs, and the presets that set all of them at once.
 */

/** Difficulty presets, easiest first. */
export const PRESET_NAMES = ['easy', 'medium', 'hard'] as const;

export type Preset = (typeof PRESET_NAMES)[number];

/** Language features a program may use; a preset enables a subset. */
export const ALL_FEATURES = [
  'arith', // + - * // % on ints
  'compare', // < <= > >= == != between ints
  'bool', // and / or / not, bool variables
  'if', // if / elif / else, conditional expressions
  'for', // for loops over ranges, lists, strings, dict items
  'while', // while loops with a strictly decreasing counter
  'break', // break / continue inside loops
  'list', // int lists and list methods
  'str', // strings, string methods, word lists
  'dict', // str -> int dicts and dict methods
  'tuple', // tuples, unpacking, divmod
  'comprehension', // list and dict comprehensions
  'helper', // helper functions called from f
  'recursion', // bounded recursive helpers
] as const;

export type Feature = (typeof ALL_FEATURES)[number];

/** Difficulty knobs; a preset sets all of them, options override single ones. */
export interface Knobs {
  /** Statements in f's body before the return; each program draws between half and this many (easy 5, medium 10, hard 14). */
  statements: number;
  /** Deepest block nesting inside a function (easy 1, medium 2, hard 3). */
  maxDepth: number;
  /** Int literals and input ints lie within ±valueRange (easy 9, medium 20, hard 50). */
  valueRange: number;
  /** Whether inputs and literals may be negative (easy false, medium true, hard true). */
  negatives: boolean;
  /** Longest input list, word list or sentence in words (easy 4, medium 6, hard 8). */
  maxListLen: number;
  /** f takes between 1 and maxParams arguments (easy 2, medium 3, hard 3). */
  maxParams: number;
  /** Loops in one function, at most (easy 1, medium 3, hard 5). */
  maxLoops: number;
  /** Helper functions defined before f, at most; needs 'helper' or 'recursion' (easy 0, medium 1, hard 2). */
  helpers: number;
  /** Largest absolute int any intermediate value may reach (easy 999, medium 9999, hard 99999). */
  maxInt: number;
  /** Candidates whose run records fewer events are redrawn (easy 8, medium 15, hard 30). */
  minEvents: number;
  /** Candidates whose run records more events are redrawn (easy 150, medium 500, hard 1500). */
  maxEvents: number;
  /**
   * Share of variables and parameters given a made-up name (`kobe`, `ta_rin`, `lusa2`) instead of
   * one from their type's small pool (`nums`, `total`, …), so that a model must copy names from
   * the source rather than recall a few (0 in every preset).
   */
  freshNames: number;
  /** Features programs may use (easy: ints, lists, if, one loop; medium adds strings, dicts, tuples, comprehensions; hard adds helpers and recursion). */
  features: Feature[];
}

export const PRESETS: Record<Preset, Knobs> = {
  easy: {
    statements: 5,
    maxDepth: 1,
    valueRange: 9,
    negatives: false,
    maxListLen: 4,
    maxParams: 2,
    maxLoops: 1,
    helpers: 0,
    maxInt: 999,
    minEvents: 8,
    maxEvents: 150,
    freshNames: 0,
    features: ['arith', 'compare', 'if', 'for', 'while', 'list'],
  },
  medium: {
    statements: 10,
    maxDepth: 2,
    valueRange: 20,
    negatives: true,
    maxListLen: 6,
    maxParams: 3,
    maxLoops: 3,
    helpers: 1,
    maxInt: 9999,
    minEvents: 15,
    maxEvents: 500,
    freshNames: 0,
    features: ['arith', 'compare', 'bool', 'if', 'for', 'while', 'break', 'list', 'str', 'dict', 'tuple', 'comprehension', 'helper'],
  },
  hard: {
    statements: 14,
    maxDepth: 3,
    valueRange: 50,
    negatives: true,
    maxListLen: 8,
    maxParams: 3,
    maxLoops: 5,
    helpers: 2,
    maxInt: 99999,
    minEvents: 30,
    maxEvents: 1500,
    freshNames: 0,
    features: [...ALL_FEATURES],
  },
};

/** Resolves a preset plus overrides into complete knobs; throws on values that make no sense. */
export function resolveKnobs(opts: Partial<Knobs> & { preset?: Preset }): Knobs {
  const preset = opts.preset ?? 'medium';
  const base = PRESETS[preset];
  if (!base) throw new TypeError(`Expected \`preset\` to be one of ${PRESET_NAMES.join(', ')}, got ${String(preset)}`);
  const knobs: Knobs = { ...base, features: [...base.features] };
  for (const key of Object.keys(base) as (keyof Knobs)[]) {
    if (opts[key] !== undefined) (knobs as unknown as Record<string, unknown>)[key] = opts[key];
  }
  const positive: (keyof Knobs)[] = ['statements', 'maxDepth', 'valueRange', 'maxListLen', 'maxParams', 'maxLoops', 'maxInt', 'maxEvents'];
  for (const key of positive) {
    const v = knobs[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      throw new TypeError(`Expected \`${key}\` to be a positive integer, got ${String(v)}`);
    }
  }
  for (const key of ['helpers', 'minEvents'] as const) {
    const v = knobs[key];
    if (!Number.isInteger(v) || v < 0) throw new TypeError(`Expected \`${key}\` to be a non-negative integer, got ${String(v)}`);
  }
  if (!(knobs.freshNames >= 0 && knobs.freshNames <= 1)) throw new TypeError(`Expected \`freshNames\` in [0, 1], got ${String(knobs.freshNames)}`);
  if (knobs.minEvents > knobs.maxEvents) {
    throw new TypeError(`Expected \`minEvents\` (${knobs.minEvents}) to be at most \`maxEvents\` (${knobs.maxEvents})`);
  }
  const unknown = knobs.features.filter((f) => !(ALL_FEATURES as readonly string[]).includes(f));
  if (unknown.length > 0) throw new TypeError(`Unknown features: ${unknown.join(', ')} (known: ${ALL_FEATURES.join(', ')})`);
  return knobs;
}

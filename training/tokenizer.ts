/**
 * Byte-level BPE tokenizer, trained on corpus text.
 *
 * Vocabulary layout (fixed, so a saved tokenizer is just its merges):
 *   ids 0..255              one per byte
 *   ids 256..256+S-1        the special tokens, in the order given at training
 *   ids 256+S..             one per merge, in merge order
 *
 * Text is first cut into chunks (words, runs of punctuation, whitespace, and
 * every digit on its own) and merges never cross a chunk boundary, so numbers
 * are always spelled one digit per token: `123` and `124` share two tokens and
 * the model sees place value instead of an arbitrary vocabulary entry.
 *
 * With digit order `lsd`, every number is spelled least-significant digit first
 * (`120` is encoded as `021`; `decode` turns it back), so a model writes a sum in
 * the order its carries flow. Only digit runs that are not part of a name are
 * turned (`x12` stays), which makes the transform its own inverse. Digits are one
 * chunk each, so the merges a corpus teaches do not depend on the order.
 *
 * Strings become bytes through WTF-8 (UTF-8 that also carries lone surrogates),
 * so `decode(encode(s)) === s` for every JavaScript string. Decoding ids that
 * do not form valid UTF-8 (a model can emit any sequence) gives U+FFFD per bad
 * byte instead of throwing.
 */

/** Saved form of a tokenizer (`tokenizer.json`). */
export interface TokenizerJSON {
  format: 'execwm-bpe';
  version: 1;
  /** The special tokens, ids 256.. in this order. */
  specialTokens: string[];
  /** Merges in order; merge i creates id 256 + specialTokens.length + i. */
  merges: [number, number][];
  /** How numbers are spelled in ids; absent means `msd` (as written). */
  digitOrder?: DigitOrder;
}

/** `msd`: numbers as written; `lsd`: each number's digits reversed, least significant first. */
export type DigitOrder = 'msd' | 'lsd';
export const DIGIT_ORDERS: readonly DigitOrder[] = ['msd', 'lsd'];

/** A run of ASCII digits that does not continue a name or another number. */
const NUMBER_PATTERN = /(?<![\p{L}\p{N}_])[0-9]{2,}/gu;

/** Reverses the digits of every number in `text` (not digits inside names); its own inverse. */
export function reverseNumbers(text: string): string {
  return text.replace(NUMBER_PATTERN, (run) => [...run].reverse().join(''));
}

export interface TrainTokenizerOptions {
  /** Final vocabulary size including the 256 bytes and the special tokens. */
  vocabSize: number;
  /** Tokens that are always one id and never produced from plain text. */
  specialTokens: readonly string[];
  /** How numbers are spelled in ids; default `msd`. */
  digitOrder?: DigitOrder;
  /** A chunk must occur at least this often (weighted) for its pairs to count; keeps rare noise out. */
  minFrequency?: number;
}

/**
 * Pre-tokenizer: letters with an optional leading space or symbol, single digits,
 * punctuation runs, newlines with their indentation, other whitespace, and a
 * catch-all so every character belongs to exactly one chunk.
 */
const CHUNK_PATTERN = /[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+|\r?\n[^\S\r\n]*|[^\S\r\n]+|[\s\S]/gu;

const BYTE_COUNT = 256;

/** Splits text into the chunks merges may not cross. */
export function preTokenize(text: string): string[] {
  return text.match(CHUNK_PATTERN) ?? [];
}

/** WTF-8 encoding: UTF-8, except lone surrogates are kept as 3-byte sequences. */
export function stringToBytes(text: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
      }
    }
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return out;
}

/** Inverse of {@link stringToBytes}; a malformed byte becomes U+FFFD. */
export function bytesToString(bytes: ArrayLike<number>): string {
  let out = '';
  const n = bytes.length;
  let i = 0;
  const cont = (k: number): boolean => k < n && (bytes[k]! & 0xc0) === 0x80;
  while (i < n) {
    const b = bytes[i]!;
    if (b < 0x80) {
      out += String.fromCharCode(b);
      i += 1;
    } else if (b >= 0xc2 && b < 0xe0 && cont(i + 1)) {
      out += String.fromCharCode(((b & 31) << 6) | (bytes[i + 1]! & 63));
      i += 2;
    } else if (b >= 0xe0 && b < 0xf0 && cont(i + 1) && cont(i + 2)) {
      const c = ((b & 15) << 12) | ((bytes[i + 1]! & 63) << 6) | (bytes[i + 2]! & 63);
      if (c < 0x800) {
        out += '\ufffd';
        i += 1;
      } else {
        out += String.fromCharCode(c);
        i += 3;
      }
    } else if (b >= 0xf0 && b < 0xf5 && cont(i + 1) && cont(i + 2) && cont(i + 3)) {
      const c = ((b & 7) << 18) | ((bytes[i + 1]! & 63) << 12) | ((bytes[i + 2]! & 63) << 6) | (bytes[i + 3]! & 63);
      if (c < 0x10000 || c > 0x10ffff) {
        out += '\ufffd';
        i += 1;
      } else {
        out += String.fromCodePoint(c);
        i += 4;
      }
    } else {
      out += '\ufffd';
      i += 1;
    }
  }
  return out;
}

const pairKey = (a: number, b: number): number => a * 0x10000 + b;

export class Tokenizer {
  readonly specialTokens: readonly string[];
  readonly merges: readonly (readonly [number, number])[];
  /** Total number of ids. */
  readonly vocabSize: number;
  readonly digitOrder: DigitOrder;
  private readonly specialIds: Map<string, number>;
  private readonly ranks: Map<number, number>;
  private readonly tokenBytesTable: number[][];
  private readonly chunkCache = new Map<string, number[]>();
  private readonly specialPattern: RegExp | null;

  constructor(json: TokenizerJSON) {
    if (json.format !== 'execwm-bpe' || json.version !== 1) {
      throw new Error(`Not an execwm tokenizer (format ${String(json.format)}, version ${String(json.version)})`);
    }
    this.specialTokens = json.specialTokens;
    this.merges = json.merges;
    this.digitOrder = json.digitOrder ?? 'msd';
    if (!DIGIT_ORDERS.includes(this.digitOrder)) throw new Error(`Unknown digit order ${JSON.stringify(json.digitOrder)}`);
    this.specialIds = new Map(json.specialTokens.map((t, i) => [t, BYTE_COUNT + i]));
    if (this.specialIds.size !== json.specialTokens.length) throw new Error('Duplicate special tokens');
    const first = BYTE_COUNT + json.specialTokens.length;
    this.vocabSize = first + json.merges.length;
    this.ranks = new Map();
    this.tokenBytesTable = [];
    for (let b = 0; b < BYTE_COUNT; b++) this.tokenBytesTable.push([b]);
    for (const t of json.specialTokens) this.tokenBytesTable.push(stringToBytes(t));
    json.merges.forEach(([a, b], i) => {
      const id = first + i;
      const ok = (x: number) => Number.isInteger(x) && x >= 0 && x < id && (x < BYTE_COUNT || x >= first);
      if (!ok(a) || !ok(b)) throw new Error(`Tokenizer merge ${i} refers to an invalid id (${a}, ${b})`);
      this.ranks.set(pairKey(a, b), id);
      this.tokenBytesTable.push([...this.tokenBytesTable[a]!, ...this.tokenBytesTable[b]!]);
    });
    this.specialPattern =
      json.specialTokens.length > 0
        ? new RegExp(
            [...json.specialTokens]
              .sort((x, y) => y.length - x.length)
              .map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
              .join('|'),
            'g',
          )
        : null;
  }

  /** Id of a special token; throws for an unknown one (a bug in the caller). */
  specialId(token: string): number {
    const id = this.specialIds.get(token);
    if (id === undefined) throw new Error(`Unknown special token ${JSON.stringify(token)}`);
    return id;
  }

  /** Whether `id` is a special token. */
  isSpecial(id: number): boolean {
    return id >= BYTE_COUNT && id < BYTE_COUNT + this.specialTokens.length;
  }

  /** Encodes plain text; special-token strings inside it are spelled as ordinary bytes. */
  encode(text: string): number[] {
    const out: number[] = [];
    for (const chunk of preTokenize(this.digitOrder === 'lsd' ? reverseNumbers(text) : text)) {
      for (const id of this.encodeChunk(chunk)) out.push(id);
    }
    return out;
  }

  /** Encodes text in which special-token strings stand for their single ids (for prompts). */
  encodeWithSpecials(text: string): number[] {
    if (!this.specialPattern) return this.encode(text);
    const out: number[] = [];
    let last = 0;
    for (const m of text.matchAll(this.specialPattern)) {
      out.push(...this.encode(text.slice(last, m.index)), this.specialId(m[0]));
      last = m.index + m[0].length;
    }
    out.push(...this.encode(text.slice(last)));
    return out;
  }

  /** The bytes of one id (a special token gives its UTF-8 spelling). */
  tokenBytes(id: number): readonly number[] {
    const bytes = this.tokenBytesTable[id];
    if (!bytes) throw new Error(`Token id ${id} out of range (vocabulary ${this.vocabSize})`);
    return bytes;
  }

  /** Decodes ids to text (numbers as written, whatever the digit order); special tokens appear as their strings. */
  decode(ids: ArrayLike<number>): string {
    const bytes: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      for (const b of this.tokenBytes(ids[i]!)) bytes.push(b);
    }
    const text = bytesToString(bytes);
    return this.digitOrder === 'lsd' ? reverseNumbers(text) : text;
  }

  toJSON(): TokenizerJSON {
    return {
      format: 'execwm-bpe',
      version: 1,
      specialTokens: [...this.specialTokens],
      merges: this.merges.map(([a, b]) => [a, b]),
      ...(this.digitOrder === 'msd' ? {} : { digitOrder: this.digitOrder }),
    };
  }

  /** BPE on one chunk: repeatedly merge the adjacent pair created earliest in training. */
  private encodeChunk(chunk: string): number[] {
    const cached = this.chunkCache.get(chunk);
    if (cached) return cached;
    const ids = stringToBytes(chunk);
    while (ids.length > 1) {
      let best = -1;
      let bestId = Infinity;
      for (let i = 0; i + 1 < ids.length; i++) {
        const id = this.ranks.get(pairKey(ids[i]!, ids[i + 1]!));
        if (id !== undefined && id < bestId) {
          bestId = id;
          best = i;
        }
      }
      if (best < 0) break;
      ids.splice(best, 2, bestId);
    }
    // Bounded so encoding an unbounded stream of novel text cannot grow memory forever.
    if (this.chunkCache.size < 200_000) this.chunkCache.set(chunk, ids);
    return ids;
  }
}

/**
 * Learns merges from `texts` (each an iterable of plain-text pieces; special
 * tokens are never part of them). Deterministic: ties go to the smaller pair.
 *
 * Counts are kept incrementally (pair → count, pair → words containing it) so
 * each merge only touches the words that contain the merged pair.
 */
export function trainTokenizer(texts: Iterable<string>, options: TrainTokenizerOptions): Tokenizer {
  const { vocabSize, specialTokens, minFrequency = 2, digitOrder = 'msd' } = options;
  const firstMerge = BYTE_COUNT + specialTokens.length;
  if (!Number.isInteger(vocabSize) || vocabSize < firstMerge) {
    throw new TypeError(`Expected \`vocabSize\` to be an integer >= ${firstMerge}, got ${vocabSize}`);
  }
  const chunkCounts = new Map<string, number>();
  for (const text of texts) {
    for (const chunk of preTokenize(text)) chunkCounts.set(chunk, (chunkCounts.get(chunk) ?? 0) + 1);
  }
  // Sorted so the word order (and with it every tie) does not depend on input order.
  const entries = [...chunkCounts].filter(([c, n]) => n >= minFrequency && c.length > 1).sort((x, y) => (x[0] < y[0] ? -1 : 1));
  const words: number[][] = entries.map(([c]) => stringToBytes(c));
  const freqs: number[] = entries.map(([, n]) => n);
  const pairCounts = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const addPairs = (w: number, sign: number) => {
    const sym = words[w]!;
    for (let i = 0; i + 1 < sym.length; i++) {
      const k = pairKey(sym[i]!, sym[i + 1]!);
      pairCounts.set(k, (pairCounts.get(k) ?? 0) + sign * freqs[w]!);
      if (sign > 0) {
        let set = pairWords.get(k);
        if (!set) pairWords.set(k, (set = new Set()));
        set.add(w);
      }
    }
  };
  for (let w = 0; w < words.length; w++) addPairs(w, 1);

  const merges: [number, number][] = [];
  for (let id = firstMerge; id < vocabSize; id++) {
    let bestKey = -1;
    let bestCount = 0;
    for (const [k, n] of pairCounts) {
      if (n > bestCount || (n === bestCount && n > 0 && k < bestKey)) {
        bestKey = k;
        bestCount = n;
      }
    }
    if (bestCount < minFrequency) break;
    const a = Math.floor(bestKey / 0x10000);
    const b = bestKey % 0x10000;
    merges.push([a, b]);
    const affected = [...(pairWords.get(bestKey) ?? [])].sort((x, y) => x - y);
    for (const w of affected) {
      const sym = words[w]!;
      addPairs(w, -1);
      const next: number[] = [];
      for (let i = 0; i < sym.length; i++) {
        if (i + 1 < sym.length && sym[i] === a && sym[i + 1] === b) {
          next.push(id);
          i++;
        } else next.push(sym[i]!);
      }
      words[w] = next;
      addPairs(w, 1);
    }
    pairCounts.delete(bestKey);
    pairWords.delete(bestKey);
    for (const [k, n] of pairCounts) if (n <= 0) pairCounts.delete(k);
  }
  return new Tokenizer({ format: 'execwm-bpe', version: 1, specialTokens: [...specialTokens], merges, ...(digitOrder === 'msd' ? {} : { digitOrder }) });
}

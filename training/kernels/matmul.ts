/**
 * The one matrix product the model uses. With the wasm kernel overrides installed (see
 * ./wasm.ts) or on any other backend it is plain `tf.matMul`; when the overrides cannot be
 * installed (tfjs internals changed), `useTransposingMatMul(true)` switches to a public-API
 * `customGrad` form whose forward and backward products are all untransposed rank-2 products,
 * the only form the stock wasm kernel sends to XNNPACK.
 */
import * as tf from '../tf.js';

export interface MatMulOptions {
  /** Multiply by aᵀ instead of a; default false. */
  transposeA?: boolean;
  /** Multiply by bᵀ instead of b; default false. */
  transposeB?: boolean;
}

let transposing = false;

/** Selects the customGrad fallback (true) or plain tf.matMul (false). */
export function useTransposingMatMul(on: boolean): void {
  transposing = on;
}

/** Swaps the last two axes. */
function swapLast(x: tf.Tensor): tf.Tensor {
  const perm = x.shape.map((_, i) => i);
  perm[perm.length - 2] = perm.length - 1;
  perm[perm.length - 1] = perm.length - 2;
  return tf.transpose(x, perm);
}

/** a [..., M, K] · b [..., K, N] → [..., M, N] with only untransposed products. */
function plainMatMul(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  if (a.rank === 2 && b.rank === 2) return tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D);
  // A shared rank-2 right factor: fold the batch into rows so the product stays rank-2.
  if (b.rank === 2) {
    const rows = tf.reshape(a, [-1, a.shape[a.rank - 1]]);
    return tf.reshape(tf.matMul(rows as tf.Tensor2D, b as tf.Tensor2D), [...a.shape.slice(0, -1), b.shape[1]!]);
  }
  return tf.matMul(a, b);
}

const transposingMatMul = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [a, b, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
  save([a, b]);
  return {
    value: plainMatMul(a, b),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sa, sb] = saved as [tf.Tensor, tf.Tensor];
      const da = plainMatMul(dy, swapLast(sb)); // [..., M, K]
      let db: tf.Tensor;
      if (sb.rank === 2 && sa.rank > 2) {
        // Shared weight: sum over the folded batch, i.e. one [K, rows]·[rows, N] product.
        const rows = tf.reshape(sa, [-1, sa.shape[sa.rank - 1]]) as tf.Tensor2D;
        const dyRows = tf.reshape(dy, [-1, dy.shape[dy.rank - 1]]) as tf.Tensor2D;
        db = tf.matMul(tf.transpose(rows), dyRows);
      } else {
        db = plainMatMul(swapLast(sa), dy); // [..., K, N]
      }
      return [da, db];
    },
  };
});

/** a · b with optional transposes (tf.matMul semantics, same shapes). */
export function matMul<T extends tf.Tensor>(a: T, b: tf.Tensor, opts: MatMulOptions = {}): T {
  if (!transposing) return tf.matMul(a, b, opts.transposeA ?? false, opts.transposeB ?? false) as T;
  const left = opts.transposeA ? swapLast(a) : a;
  const right = opts.transposeB ? swapLast(b) : b;
  return transposingMatMul(left, right) as T;
}

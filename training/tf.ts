/**
 * TensorFlow.js as training/ and eval/ use it: import `* as tf from './tf.js'`.
 * tfjs-core alone registers no gradients and no chained ops (`x.reshape`); the union package
 * '@tensorflow/tfjs' registers both, into the registries it shares with tfjs-core.
 */
import './tf-quiet.js';
import '@tensorflow/tfjs';

export * from '@tensorflow/tfjs-core';

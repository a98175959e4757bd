/**
 * TensorFlow.js as training/ and eval/ use it: import `* as tf from './tf.js'`.
 * tfjs-core alone registers no gradients and no chained ops (`x.reshape`); the union package
 * '@tensorflow/tfjs' registers both, into the registries it shares with tfjs-core.
 */
import './tf-quiet.js';
import '@tensorflow/tfjs';
import { setBackend } from '@tensorflow/tfjs-core';

export * from '@tensorflow/tfjs-core';

// A synchronous default until setupBackend (./backend.ts) picks one: left alone, tfjs would pick
// the highest-priority registered backend, wasm, whose initialisation is asynchronous, and the
// first op would throw "backend 'wasm' has not yet been initialized". The cpu backend
// initialises synchronously, so it is active as soon as this call starts.
void setBackend('cpu');

/**
 * Evaluated before '@tensorflow/tfjs' (see ./tf.ts): in PROD mode tfjs does not print its
 * "install tfjs-node" advert on stderr, which the union package triggers at import time.
 */
import { env } from '@tensorflow/tfjs-core';

env().set('PROD', true);

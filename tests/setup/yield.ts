import { beforeEach } from 'vitest';

/**
 * A turn of the event loop before every test. Many tests here are long synchronous work (tfjs
 * on the cpu backend); run back to back without one, a worker cannot read the runner's replies
 * for minutes, and vitest fails the run with "Timeout calling onTaskUpdate" although every test
 * passed. setImmediate runs after the loop has polled for those replies.
 */
beforeEach(() => new Promise<void>((resolve) => setImmediate(resolve)));

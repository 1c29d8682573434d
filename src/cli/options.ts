// Parsers for flag values shared by several commands; a bad value is a usage error (exit 2).
import { UsageError } from '../util/errors.js';

export function parseIntFlag(name: string, min = 0) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`${name} expects an integer >= ${min}, got '${value}'`);
    return n;
  };
}

export function parseFloatFlag(name: string, min = -Infinity) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min) throw new UsageError(`${name} expects a number >= ${min}, got '${value}'`);
    return n;
  };
}

/** Parses 'HxW' (e.g. 320x480) into [height, width]. */
export function parseSize(name: string) {
  return (value: string): [number, number] => {
    const m = /^(\d+)x(\d+)$/.exec(value);
    if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) throw new UsageError(`${name} expects HxW (e.g. 320x480), got '${value}'`);
    return [Number(m[1]), Number(m[2])];
  };
}

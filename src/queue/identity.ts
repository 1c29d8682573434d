// A model's identity: SHA-256 over its architecture and canonical weights, so the same network
// reads the same whatever file it came from (the book's .pth, its imported .safetensors, our
// checkpoint) and any change to a weight, a shape or the class count changes it. A queue worker
// compares it with a job's to refuse work meant for another model. Class names, colours and other
// metadata do not enter: they do not change the masks.
import { createHash } from 'node:crypto';
import type { Checkpoint } from '../weights/checkpoint.js';
import { fcnParameters } from '../model/params.js';

/**
 * Hashes, in order: 'fcn-model-identity/1', the architecture name, the class count, then for each
 * parameter in canonical-name order its name, dtype (float32: weights are held as float32 after
 * loading), shape and little-endian bytes. Lengths separate the fields, so no two inputs collide by
 * concatenation.
 */
export function modelIdentity(ckpt: Pick<Checkpoint, 'arch' | 'weights'>): string {
  const h = createHash('sha256');
  const field = (s: string) => {
    const b = Buffer.from(s, 'utf8');
    h.update(u32(b.length));
    h.update(b);
  };
  field('fcn-model-identity/1');
  field(ckpt.arch.name);
  field(String(ckpt.arch.numClasses));
  const shapes = new Map(fcnParameters(ckpt.arch).map((p) => [p.name, p.shape]));
  for (const name of [...ckpt.weights.keys()].sort()) {
    const data = ckpt.weights.get(name)!;
    field(name);
    field('float32');
    field((shapes.get(name) ?? [data.length]).join('x'));
    h.update(u32(data.byteLength));
    h.update(littleEndian(data));
  }
  return h.digest('hex');
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

function littleEndian(data: Float32Array): Uint8Array {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] === 1) return bytes;
  const out = Buffer.alloc(data.byteLength);
  data.forEach((v, i) => out.writeFloatLE(v, i * 4));
  return out;
}

// What travels through the queue. A job carries everything a worker needs (no shared file system):
// the encoded image, for evaluation its ground-truth mask, and the identity of the model it was made
// for. A result carries the mask as an index PNG, the pixels per class, and for evaluation the
// image's confusion matrix, so the producer can write files and sum matrices exactly.
// BullMQ stores both as JSON in Redis: bytes travel as base64.
import { FcnError } from '../util/errors.js';

/** The BullMQ queue name unless told otherwise (several models can share a Redis under other names). */
export const DEFAULT_QUEUE_NAME = 'fcn';

/**
 * Checks a queue name before BullMQ sees it: BullMQ keys are `bull:<name>:<key>`, so a name must be
 * non-empty and hold no ':' (BullMQ throws otherwise); control characters are refused too, as they
 * would corrupt the one-line messages that quote the name. A bad name is a usage error (exit 2).
 */
export function checkQueueName(name: string): string {
  if (name === '' || name.includes(':') || /[\u0000-\u001f\u007f]/.test(name) || name.length > 200) {
    throw new FcnError(`queue name '${name.replace(/[\u0000-\u001f\u007f]/g, '?')}': expected 1 to 200 characters without ':' or control characters (e.g. fcn, fcn-voc)`, 2);
  }
  return name;
}

/** Job names: a segmentation (predict) and a segmentation scored against its mask (eval). */
export type JobKind = 'segment' | 'evaluate';

export interface SegmentJobData {
  /** modelIdentity() of the model the producer holds; a worker serving another refuses the job. */
  model: string;
  /** The input's name on the producer's side (file path or dataset id), for messages. */
  source: string;
  /** The encoded image (JPEG/PNG/WebP bytes), base64. */
  image: string;
  /** evaluate only: the ground-truth index mask (PNG bytes), base64. */
  truth?: string;
  /** segment only: the producer's tile size (fcn predict --tile), in place of the worker's own. */
  tileSize?: number;
}

export interface SegmentJobResult {
  width: number;
  height: number;
  /** The mask as a palette PNG (pixel value = class id), base64. */
  mask: string;
  /** Pixels per class id, 0..numClasses-1. */
  pixels: number[];
  /** evaluate only: the image's confusion matrix, numClasses² counts, row = truth, column = prediction. */
  confusion?: number[];
  /** The worker that did it (its --name and host/pid), for logs. */
  worker: string;
}

/** Marks a failure that retrying cannot fix; the producer reports it and counts the input as failed. */
export const BAD_INPUT = 'bad input: ';
/** Marks a job refused because the worker serves another model; the producer stops the whole run. */
export const MODEL_MISMATCH = 'model mismatch: ';

export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

export function fromBase64(text: string): Uint8Array {
  const b = Buffer.from(text, 'base64');
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** The first 12 hex digits: enough to tell models apart in a message. */
export function shortIdentity(id: string): string {
  return id.slice(0, 12);
}

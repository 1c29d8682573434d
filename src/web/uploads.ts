// Receiving uploads: the image out of a request (a raw body, or the first file of a multipart
// form read by @fastify/multipart, fastify's official parser), and a cap on how many request
// bodies are being received at once, so slow clients cannot pin an unbounded number of buffers.
import type { IncomingMessage } from 'node:http';
import type { FastifyRequest } from 'fastify';
import { FcnError, errorMessage } from '../util/errors.js';

/** An error with the HTTP status to answer; its message goes to the client as `{error}`. */
export class HttpError extends FcnError {
  constructor(readonly statusCode: number, message: string) {
    super(message);
    this.name = 'HttpError';
  }
}

/** What multipart forms may hold: one image file, and a few small fields beside it. */
export const MULTIPART_LIMITS = { parts: 16, fields: 8, fieldSize: 64 * 1024, headerPairs: 32 };

/** The field names taken as the image even when the part carries no filename. */
const IMAGE_FIELDS = new Set(['image', 'file']);

export interface UploadedImage {
  bytes: Uint8Array;
  /** How messages name it: the part's filename, or "request body". */
  name: string;
}

/** The message for a body over the limit (raw bodies and multipart files alike). */
export function bodyTooLargeMessage(maxBodyMb: number): string {
  return `request body too large: the limit is ${maxBodyMb} MB (--max-body-mb)`;
}

/**
 * The image bytes of a request: a raw body (image/*, application/octet-stream, anything) or the
 * first file part of a multipart/form-data body (a part with a filename, whether given as
 * `filename=` quoted or not, or RFC 5987's `filename*=`; or a part named `image` or `file`).
 */
export async function uploadedImage(request: FastifyRequest, maxBodyMb: number): Promise<UploadedImage> {
  if (request.isMultipart()) return multipartImage(request, maxBodyMb);
  const body = request.body;
  if (!Buffer.isBuffer(body) || body.length === 0) {
    throw new HttpError(400, 'empty request body: send the image bytes (JPEG/PNG/WebP) as the body or as a multipart file');
  }
  return { bytes: body, name: 'request body' };
}

async function multipartImage(request: FastifyRequest, maxBodyMb: number): Promise<UploadedImage> {
  try {
    const part = await request.file({
      limits: { ...MULTIPART_LIMITS, files: 1, fileSize: Math.floor(maxBodyMb * 1024 * 1024) },
      isPartAFile: (field, type, filename) => filename !== undefined || type === 'application/octet-stream' || IMAGE_FIELDS.has(field ?? ''),
    });
    if (!part) throw new HttpError(400, 'multipart body: no file part (send the image as a file field, e.g. curl -F image=@photo.jpg)');
    const bytes = await part.toBuffer();
    const label = part.filename || part.fieldname;
    if (bytes.length === 0) throw new HttpError(400, `multipart file '${label}' is empty`);
    return { bytes, name: part.filename || 'uploaded file' };
  } catch (err) {
    throw multipartError(err, maxBodyMb);
  }
}

/** Turns the parser's errors into one-line HTTP errors. */
function multipartError(err: unknown, maxBodyMb: number): Error {
  if (err instanceof HttpError) return err;
  const code = (err as { code?: string }).code;
  const message = errorMessage(err);
  if (code === 'FST_REQ_FILE_TOO_LARGE') return new HttpError(413, bodyTooLargeMessage(maxBodyMb));
  if (code === 'FST_PARTS_LIMIT') return new HttpError(413, `multipart body: more than ${MULTIPART_LIMITS.parts} parts (send one image file)`);
  if (code === 'FST_FIELDS_LIMIT') return new HttpError(413, `multipart body: more than ${MULTIPART_LIMITS.fields} fields (send one image file)`);
  if (code === 'FST_PROTO_VIOLATION') return new HttpError(400, 'multipart body: a field name is not allowed');
  if (/unexpected end|terminated early|premature close/i.test(message)) {
    return new HttpError(400, 'multipart body: a part is not terminated by its boundary (truncated upload?)');
  }
  return new HttpError(400, `multipart body: ${message.replace(/\s+/g, ' ')}`);
}

/**
 * Counts request bodies being received and refuses new ones past `limit`. A body stops counting
 * once it has been read to its end, its connection closed, or its response been sent.
 */
export class UploadGate {
  private active = 0;
  private peak = 0;
  private refused = 0;
  private readonly counted = new WeakSet<IncomingMessage>();

  constructor(readonly limit: number) {
    if (!(Number.isInteger(limit) && limit >= 1)) throw new FcnError(`the concurrent upload limit must be an integer >= 1, got ${limit}`, 2);
  }

  /** Whether a request carries a body to receive. */
  static hasBody(raw: IncomingMessage): boolean {
    return raw.headers['transfer-encoding'] !== undefined || Number(raw.headers['content-length'] ?? 0) > 0;
  }

  /** Starts counting `raw`'s body; false (nothing counted) when `limit` bodies are already being received. */
  enter(raw: IncomingMessage): boolean {
    if (this.counted.has(raw)) return true;
    if (this.active >= this.limit) {
      this.refused++;
      return false;
    }
    this.counted.add(raw);
    this.active++;
    this.peak = Math.max(this.peak, this.active);
    const leave = () => this.leave(raw);
    raw.once('end', leave);
    raw.once('close', leave);
    return true;
  }

  /** Stops counting `raw` (idempotent). */
  leave(raw: IncomingMessage): void {
    if (!this.counted.has(raw)) return;
    this.counted.delete(raw);
    this.active--;
  }

  snapshot(): { receiving: number; peakReceiving: number; refused: number; limit: number } {
    return { receiving: this.active, peakReceiving: this.peak, refused: this.refused, limit: this.limit };
  }
}

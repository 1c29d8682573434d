// Just enough multipart/form-data to take one uploaded file out of a buffered body (what
// `curl -F image=@photo.jpg` and HTML forms send), so the API needs no extra dependency.
import { FcnError } from '../util/errors.js';

export interface UploadedFile {
  bytes: Uint8Array;
  /** The part's filename, when it has one. */
  filename?: string;
  /** The form field's name. */
  field?: string;
}

/** The boundary of a `multipart/form-data; boundary=...` content type, or undefined. */
export function multipartBoundary(contentType: string): string | undefined {
  if (!/^multipart\/form-data\b/i.test(contentType)) return undefined;
  const m = /;\s*boundary=(?:"([^"]+)"|([^\s;]+))/i.exec(contentType);
  return m ? (m[1] ?? m[2]) : undefined;
}

/**
 * The first file part of a multipart body (a part with a filename; failing that, the first part
 * named `image` or `file`). Throws FcnError when the body holds none.
 */
export function firstFilePart(body: Buffer, boundary: string): UploadedFile {
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: UploadedFile[] = [];
  let pos = body.indexOf(delimiter);
  if (pos < 0) throw new FcnError(`multipart body: boundary '${boundary}' not found`);
  for (;;) {
    pos += delimiter.length;
    // "--" after a delimiter closes the body
    if (body[pos] === 0x2d && body[pos + 1] === 0x2d) break;
    const headerEnd = body.indexOf('\r\n\r\n', pos);
    if (headerEnd < 0) break;
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delimiter]), headerEnd + 4);
    if (next < 0) throw new FcnError('multipart body: a part is not terminated by its boundary (truncated upload?)');
    const headers = body.subarray(pos, headerEnd).toString('latin1');
    const disposition = /content-disposition:([^\r\n]*)/i.exec(headers)?.[1] ?? '';
    const field = /\bname="([^"]*)"/i.exec(disposition)?.[1];
    const filename = /\bfilename="([^"]*)"/i.exec(disposition)?.[1];
    parts.push({ bytes: body.subarray(headerEnd + 4, next), filename, field });
    pos = next + 2;
  }
  const file = parts.find((p) => p.filename !== undefined) ?? parts.find((p) => p.field === 'image' || p.field === 'file');
  if (!file) throw new FcnError('multipart body: no file part (send the image as a file field, e.g. curl -F image=@photo.jpg)');
  return file;
}

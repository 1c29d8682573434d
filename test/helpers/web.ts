// Test helpers for the server: structured pictures, encoded, and a raw TCP client for slow and
// half-sent requests.
import net from 'node:net';
import sharp from 'sharp';
import type { RgbImage } from '../../src/data/image.js';

/** A picture with some structure (gradients, a disc, a bar) so the random network's mask is not flat. */
export function picture(width: number, height: number, seed = 0): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const inDisc = (x - width * 0.35) ** 2 + (y - height * 0.5) ** 2 < (Math.min(width, height) * 0.3) ** 2;
      const inBar = x > width * 0.7 && x < width * 0.85;
      data[i] = inDisc ? 230 : (x * 255) / width;
      data[i + 1] = inBar ? 20 : (y * 255) / height;
      data[i + 2] = (seed * 37 + ((x ^ y) & 63) * 3) & 255;
    }
  }
  return { width, height, data };
}

export async function encode(img: RgbImage, format: 'png' | 'jpeg'): Promise<Buffer> {
  const s = sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } });
  return format === 'png' ? s.png().toBuffer() : s.jpeg({ quality: 92 }).toBuffer();
}

/** A raw client: sends `head` (write more to `socket`); `closed` resolves with what came back and when the server closed. */
export function rawClient(port: number, head: string): { socket: net.Socket; closed: Promise<{ text: string; ms: number }> } {
  const started = Date.now();
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  socket.write(head);
  let text = '';
  socket.on('data', (d: Buffer) => { text += d.toString('latin1'); });
  const closed = new Promise<{ text: string; ms: number }>((resolve) => socket.on('close', () => resolve({ text, ms: Date.now() - started })));
  return { socket, closed };
}

/** The head of a POST /api/segment declaring `bytes` of body. */
export const slowHead = (bytes: number) => `POST /api/segment HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/png\r\nContent-Length: ${bytes}\r\n\r\n`;


// Text from files (id lists, file names, class names) made safe to print: a terminal obeys control
// characters, so an id line holding ESC[2J would clear the user's screen and ESC]0;...BEL retitle
// the window. Control characters are shown as escapes (\x1b, \n, \u009b), everything else as is.

// C0 controls, DEL, C1 controls, and the Unicode line/paragraph separators and bidi overrides
// (which reorder what follows them on screen)
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

function escapeOne(c: string): string {
  const code = c.charCodeAt(0);
  switch (c) {
    case '\n': return '\\n';
    case '\r': return '\\r';
    case '\t': return '\\t';
  }
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** `s` with every control character escaped: one printable line, whatever the file held. */
export function printable(s: string): string {
  return s.replace(CONTROL, escapeOne);
}

/** Like printable, but keeps line breaks (for multi-line output such as a metrics table). */
export function printableLines(s: string): string {
  return s.split('\n').map(printable).join('\n');
}

/** True when `s` holds a control character (tab aside) that printable would escape. */
export function hasControl(s: string): boolean {
  return /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/.test(s);
}

/**
 * Whether bytes are binary data rather than text: a NUL byte (never in UTF-8 text; UTF-16 text
 * is full of them) or invalid UTF-8 (images, archives: random bytes fail within a few). Returns
 * the byte offset of the first sign, or -1 for text. Control characters in text are the printer's
 * business (printable), not a sign of binary.
 */
export function binaryOffset(bytes: Uint8Array): number {
  const nul = bytes.indexOf(0);
  if (nul >= 0) return nul;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    // find where the invalid sequence starts: decode growing prefixes would be quadratic, so scan
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!;
      const len = b < 0x80 ? 1 : b >= 0xc2 && b < 0xe0 ? 2 : b >= 0xe0 && b < 0xf0 ? 3 : b >= 0xf0 && b < 0xf5 ? 4 : 0;
      if (len === 0) return i;
      for (let k = 1; k < len; k++) if (i + k >= bytes.length || (bytes[i + k]! & 0xc0) !== 0x80) return i;
      i += len - 1;
    }
    return 0;
  }
  return -1;
}

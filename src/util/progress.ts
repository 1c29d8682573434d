// Progress for long work: a redrawn bar with rate and ETA on a TTY, plain lines otherwise
// (at most one line every `plainEveryMs`, plus the last), so logs stay readable.

export interface ProgressOptions {
  total: number;
  label?: string;
  /** Formats the done/total counts, e.g. bytes as MB. */
  format?: (n: number) => string;
  unit?: string;
  stream?: NodeJS.WriteStream;
  plainEveryMs?: number;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  const mm = String(m).padStart(2, '0');
  const ss = String(r).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

/** Counts as integers, rates with at most one decimal (e.g. 3.3 img/s). */
function formatCount(n: number): string {
  return Number.isInteger(n) ? String(n) : n >= 100 ? n.toFixed(0) : n.toFixed(1);
}

export class Progress {
  private done = 0;
  private readonly start = Date.now();
  private lastPlain = 0;
  private readonly tty: boolean;
  private readonly stream: NodeJS.WriteStream;
  private suffix = '';

  constructor(private readonly opts: ProgressOptions) {
    this.stream = opts.stream ?? process.stderr;
    this.tty = Boolean(this.stream.isTTY);
  }

  /** Sets the absolute amount done and an optional text after the bar (e.g. the running loss). */
  update(done: number, suffix?: string): void {
    this.done = done;
    if (suffix !== undefined) this.suffix = suffix;
    this.render(false);
  }

  tick(n = 1, suffix?: string): void {
    this.update(this.done + n, suffix);
  }

  finish(suffix?: string): void {
    if (suffix !== undefined) this.suffix = suffix;
    this.render(true);
    if (this.tty) this.stream.write('\n');
  }

  private render(final: boolean): void {
    const { total, label = '', unit = '' } = this.opts;
    const fmt = this.opts.format ?? formatCount;
    const elapsed = (Date.now() - this.start) / 1000;
    const rate = elapsed > 0 ? this.done / elapsed : 0;
    const eta = rate > 0 && total > 0 ? (total - this.done) / rate : NaN;
    const frac = total > 0 ? Math.min(1, this.done / total) : 0;
    const counts = `${fmt(this.done)}/${fmt(total)}${unit ? ' ' + unit : ''}`;
    const rateText = `${fmt(rate)}${unit ? ' ' + unit : ''}/s`;
    const tail = `${counts} ${rateText} ${final ? 'in ' + formatDuration(elapsed) : 'ETA ' + formatDuration(eta)}${this.suffix ? ' ' + this.suffix : ''}`;
    if (this.tty) {
      const width = 24;
      const filled = Math.round(frac * width);
      const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
      this.stream.write(`\r\x1b[K${label} ${bar} ${(frac * 100).toFixed(0).padStart(3)}% ${tail}`);
    } else {
      const now = Date.now();
      if (!final && now - this.lastPlain < (this.opts.plainEveryMs ?? 5000)) return;
      this.lastPlain = now;
      this.stream.write(`${label} ${(frac * 100).toFixed(0)}% ${tail}\n`);
    }
  }
}

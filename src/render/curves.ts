// The training curves picture (the book's Animator after train_ch13): loss per epoch on the left,
// train accuracy, val ("test") pixel accuracy and val mean IoU on the right, against the epoch.
// Lines and axes are drawn as SVG and rasterised by sharp; the text is drawn with the project's
// text renderer, which falls back to built-in glyphs where the machine has no fonts, so the labels
// read on any machine.
import type Sharp from 'sharp';
import { requireCjs } from '../util/cjs.js';
import type { RgbImage } from '../data/image.js';
import { encodeImage } from '../data/image.js';
import type { Rgb } from '../data/voc.js';
import { drawText, renderText } from './text.js';
import { writeFileAtomic } from '../util/fs.js';

const sharp = requireCjs('sharp') as typeof Sharp;

export interface CurveSeries {
  name: string;
  color: string;
  /** SVG stroke-dasharray ('' for solid). */
  dash: string;
  /** One value per epoch point (x = epoch). */
  points: { x: number; y: number }[];
}

interface Panel {
  title: string;
  x0: number;
  y0: number;
  width: number;
  height: number;
  yMin: number;
  yMax: number;
  series: CurveSeries[];
}

interface TextItem {
  text: string;
  x: number;
  y: number;
  /** Horizontal anchor of x; y is the text's vertical centre. */
  anchor: 'start' | 'middle' | 'end';
  size: number;
  color: Rgb;
}

const WIDTH = 960;
const HEIGHT = 400;
const MARGIN = { left: 64, right: 20, top: 40, bottom: 84 };
const GAP = 84;
const INK: Rgb = [40, 40, 40];
const MUTED: Rgb = [110, 110, 110];

/** "Nice" tick values (1, 2, 5 × 10^k steps) from the last tick <= lo to the first tick >= hi. */
export function niceTicks(lo: number, hi: number, target = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.ceil(hi / step - 1e-9);
  const out: number[] = [];
  for (let k = first; k <= last; k++) out.push(Number((k * step).toFixed(10)));
  return out;
}

function formatTick(v: number): string {
  if (Number.isInteger(v)) return String(v);
  return Number(v.toPrecision(3)).toString();
}

/** What the curves plot of one epoch (the training loop's per-epoch record has these fields). */
export interface CurvePoint {
  epoch: number;
  loss: number;
  trainAccuracy: number;
  testAccuracy: number;
  testMeanIoU: number;
}

/** The series drawn for a history: loss on one panel, the three accuracies on the other. */
export function curveSeries(history: readonly CurvePoint[]): { loss: CurveSeries[]; accuracy: CurveSeries[] } {
  const pts = (f: (m: CurvePoint) => number) => history.map((m) => ({ x: m.epoch, y: f(m) }));
  return {
    loss: [{ name: 'train loss', color: '#1f77b4', dash: '', points: pts((m) => m.loss) }],
    accuracy: [
      { name: 'train acc', color: '#c020c0', dash: '8 5', points: pts((m) => m.trainAccuracy) },
      { name: 'test acc', color: '#2ca02c', dash: '10 4 2 4', points: pts((m) => m.testAccuracy) },
      { name: 'test mIoU', color: '#d62728', dash: '2 4', points: pts((m) => m.testMeanIoU) },
    ],
  };
}

function panelSvg(p: Panel, epochs: number, texts: TextItem[]): string {
  const sx = (x: number) => p.x0 + (epochs > 1 ? ((x - 1) / (epochs - 1)) * p.width : p.width / 2);
  const sy = (y: number) => p.y0 + p.height - ((y - p.yMin) / (p.yMax - p.yMin)) * p.height;
  const parts: string[] = [];
  parts.push(`<rect x="${p.x0}" y="${p.y0}" width="${p.width}" height="${p.height}" fill="white" stroke="#444" stroke-width="1"/>`);
  for (const t of niceTicks(p.yMin, p.yMax)) {
    const y = sy(t);
    parts.push(`<line x1="${p.x0}" y1="${y}" x2="${p.x0 + p.width}" y2="${y}" stroke="#e4e4e4" stroke-width="1"/>`);
    texts.push({ text: formatTick(t), x: p.x0 - 6, y, anchor: 'end', size: 12, color: MUTED });
  }
  const xStep = Math.max(1, Math.ceil(epochs / 10));
  for (let e = 1; e <= epochs; e += xStep) {
    const x = sx(e);
    parts.push(`<line x1="${x}" y1="${p.y0 + p.height}" x2="${x}" y2="${p.y0 + p.height + 4}" stroke="#444" stroke-width="1"/>`);
    texts.push({ text: String(e), x, y: p.y0 + p.height + 13, anchor: 'middle', size: 12, color: MUTED });
  }
  texts.push({ text: 'epoch', x: p.x0 + p.width / 2, y: p.y0 + p.height + 32, anchor: 'middle', size: 13, color: INK });
  texts.push({ text: p.title, x: p.x0 + p.width / 2, y: p.y0 - 18, anchor: 'middle', size: 15, color: INK });
  for (const s of p.series) {
    const pts = s.points.filter((q) => Number.isFinite(q.y));
    if (pts.length === 0) continue;
    const d = pts.map((q, i) => `${i === 0 ? 'M' : 'L'}${sx(q.x).toFixed(2)},${sy(q.y).toFixed(2)}`).join(' ');
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : '';
    parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2.2"${dash} stroke-linejoin="round"/>`);
    for (const q of pts) parts.push(`<circle cx="${sx(q.x).toFixed(2)}" cy="${sy(q.y).toFixed(2)}" r="3" fill="${s.color}"/>`);
  }
  return parts.join('\n');
}

function legendSvg(series: CurveSeries[], y: number, texts: TextItem[]): string {
  const item = 150;
  let x = (WIDTH - series.length * item) / 2;
  const parts: string[] = [];
  for (const s of series) {
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : '';
    parts.push(`<line x1="${x}" y1="${y}" x2="${x + 34}" y2="${y}" stroke="${s.color}" stroke-width="2.5"${dash}/>`);
    texts.push({ text: s.name, x: x + 42, y, anchor: 'start', size: 13, color: INK });
    x += item;
  }
  return parts.join('\n');
}

/**
 * Draws the curves for `history` with the x axis spanning epochs 1..`epochs` (the planned total,
 * so the picture keeps its scale while a run is under way). Returns the RGB picture.
 */
export async function renderCurves(history: readonly CurvePoint[], epochs: number): Promise<RgbImage> {
  const total = Math.max(1, epochs, ...history.map((m) => m.epoch));
  const { loss, accuracy } = curveSeries(history);
  const panelW = (WIDTH - MARGIN.left - MARGIN.right - GAP) / 2;
  const panelH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const losses = history.map((m) => m.loss).filter(Number.isFinite);
  const lossTop = losses.length > 0 ? Math.max(...losses) : 1;
  const lossTicks = niceTicks(0, lossTop > 0 ? lossTop * 1.04 : 1);
  const texts: TextItem[] = [];
  const panels: Panel[] = [
    { title: 'loss', x0: MARGIN.left, y0: MARGIN.top, width: panelW, height: panelH, yMin: 0, yMax: lossTicks[lossTicks.length - 1]!, series: loss },
    { title: 'accuracy and mIoU', x0: MARGIN.left + panelW + GAP, y0: MARGIN.top, width: panelW, height: panelH, yMin: 0, yMax: 1, series: accuracy },
  ];
  const body = panels.map((p) => panelSvg(p, total, texts)).join('\n') + legendSvg([...loss, ...accuracy], HEIGHT - 22, texts);
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}"><rect width="100%" height="100%" fill="white"/>${body}</svg>`;
  const { data, info } = await sharp(Buffer.from(svg)).flatten({ background: '#ffffff' }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const img: RgbImage = { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
  for (const t of texts) {
    const mask = await renderText(t.text, t.size);
    const x = t.anchor === 'start' ? t.x : t.anchor === 'middle' ? t.x - mask.width / 2 : t.x - mask.width;
    drawText(img, mask, Math.round(x), Math.round(t.y - mask.height / 2), t.color);
  }
  return img;
}

/** Renders the curves and writes them as a PNG, atomically. */
export async function writeCurves(path: string, history: readonly CurvePoint[], epochs: number): Promise<void> {
  const img = await renderCurves(history, epochs);
  await writeFileAtomic(path, await encodeImage(img, 'png'));
}

// Merging the metrics JSON of several runs (shards of a split, or parts scored apart): their confusion
// matrices are summed and the metrics computed once from the sum, so the result is exactly what one
// run over all the images gives (counts are integers; no averaging of per-part numbers).
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ConfusionMatrix } from '../eval/confusion.js';
import { FcnError, errorMessage } from '../util/errors.js';

export interface MergedMatrix {
  matrix: ConfusionMatrix;
  classes: string[];
}

function checkedRows(value: unknown, file: string): number[][] {
  // counts above 2^53 would no longer add up exactly (the merged numbers must equal one run's)
  const what = `a square array of non-negative integer pixel counts below 2^53`;
  if (!Array.isArray(value) || value.length === 0) throw new FcnError(`${file}: 'confusionMatrix' is missing or empty (expected ${what}; fcn eval --json and fcn score --json write it)`);
  const n = value.length;
  for (const row of value) {
    if (!Array.isArray(row) || row.length !== n || row.some((v) => typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)) {
      throw new FcnError(`${file}: 'confusionMatrix' is not ${what} (${n}x${n})`);
    }
  }
  return value as number[][];
}

/** Reads one metrics JSON (DESIGN.md: classes, confusionMatrix, ...) and checks its matrix. */
export function parseMetricsJson(text: string, file: string): { classes: string[]; rows: number[][] } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new FcnError(`${file}: not JSON (${errorMessage(err)}); expected the metrics JSON of fcn eval --json or fcn score --json`);
  }
  if (typeof doc !== 'object' || doc === null) throw new FcnError(`${file}: expected a metrics JSON object`);
  const rec = doc as Record<string, unknown>;
  const rows = checkedRows(rec.confusionMatrix, file);
  const classes = rec.classes;
  if (!Array.isArray(classes) || classes.length !== rows.length || classes.some((c) => typeof c !== 'string')) {
    throw new FcnError(`${file}: 'classes' must list ${rows.length} class names, one per row of 'confusionMatrix'`);
  }
  return { classes: classes as string[], rows };
}

/** Sums the confusion matrices of metrics JSON texts; every part must have the same classes in the same order. */
export function mergeMetrics(parts: readonly { file: string; text: string }[]): MergedMatrix {
  if (parts.length === 0) throw new FcnError('nothing to merge: expected one or more metrics JSON files', 2);
  let merged: MergedMatrix | undefined;
  let first = '';
  for (const { file, text } of parts) {
    const { classes, rows } = parseMetricsJson(text, file);
    if (!merged) {
      merged = { matrix: new ConfusionMatrix(classes.length), classes };
      first = file;
    } else if (classes.length !== merged.classes.length || classes.some((c, i) => c !== merged!.classes[i])) {
      throw new FcnError(`${file}: its classes (${classes.join(', ')}) differ from those of ${first} (${merged.classes.join(', ')}); only runs of the same classes merge`);
    }
    const n = classes.length;
    rows.forEach((row, t) => row.forEach((v, p) => { merged!.matrix.counts[t * n + p]! += v; }));
    if (!merged.matrix.counts.every(Number.isSafeInteger)) throw new FcnError(`${file}: the summed pixel counts pass 2^53, where they stop adding up exactly`);
  }
  return merged!;
}

/** Reads and merges metrics JSON files (see mergeMetrics). */
export async function mergeMetricsFiles(files: readonly string[]): Promise<MergedMatrix> {
  // the same part twice would count its pixels twice: refused, whatever spelling names the file
  const seen = new Map<string, string>();
  for (const file of files) {
    const key = resolve(file);
    const other = seen.get(key);
    if (other !== undefined) throw new FcnError(`${file}: given twice (also as ${other}); each part's pixels must be counted once`, 2);
    seen.set(key, file);
  }
  const parts = await Promise.all(files.map(async (file) => {
    try {
      return { file, text: await readFile(file, 'utf8') };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new FcnError(`${file}: cannot read (${code === 'ENOENT' ? 'no such file' : errorMessage(err)}); expected a metrics JSON of fcn eval --json`);
    }
  }));
  return mergeMetrics(parts);
}

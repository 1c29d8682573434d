// Scoring predictions already on disk: two folders of index PNGs (palette or grayscale, pixel value
// = class id, 255 = void) matched by file stem, counted into one confusion matrix for the folder.
// Every pairing problem is found before any mask is decoded, so a wrong folder fails at once.
import { readdir } from 'node:fs/promises';
import { extname, basename, join } from 'node:path';
import { readMask, type LabelMap } from '../data/image.js';
import { ConfusionMatrix } from '../eval/confusion.js';
import { FcnError, errorMessage } from '../util/errors.js';

export interface ScoreOptions {
  /** Called after each pair is counted. */
  onProgress?: (done: number, total: number) => void;
  /**
   * Score only these ids (e.g. a VOC split's list, whose SegmentationClass folder also holds the other
   * split's masks); each must have a prediction and a ground truth. `listName` names it in errors.
   */
  ids?: string[];
  listName?: string;
  /** Decodes a ground-truth mask (default: readMask, VOC's index PNGs and colours); e.g. through a dataset's label space. */
  readTruth?: (path: string) => Promise<LabelMap>;
  /** Refuse masks with more pixels than this (see maxPixelsLimit). */
  maxPixels?: number;
}

/**
 * The `.png` files of a folder, keyed by stem (name without extension, case-insensitive `.png`);
 * with `skipOverlays`, without the `<id>.overlay.png` pictures that sit beside an `<id>.png`.
 */
async function pngsByStem(dir: string, role: string, skipOverlays = false): Promise<Map<string, string>> {
  let names: string[];
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    names = entries.filter((e) => e.isFile() && extname(e.name).toLowerCase() === '.png').map((e) => e.name);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such directory' : code === 'ENOTDIR' ? 'not a directory' : errorMessage(err);
    throw new FcnError(`${dir}: cannot read the ${role} folder (${why})`);
  }
  if (skipOverlays) {
    // `fcn predict --overlay` writes <id>.overlay.png beside <id>.png: pictures, not masks
    const present = new Set(names);
    names = names.filter((n) => !(n.toLowerCase().endsWith('.overlay.png') && present.has(n.slice(0, -'.overlay.png'.length) + '.png')));
  }
  if (names.length === 0) throw new FcnError(`${dir}: no .png masks in the ${role} folder (expected <id>.png index PNGs)`);
  const byStem = new Map<string, string>();
  for (const name of names.sort()) {
    const stem = basename(name, extname(name));
    const prev = byStem.get(stem);
    if (prev !== undefined) throw new FcnError(`${join(dir, name)}: same stem as ${join(dir, prev)}; expected one mask per id`);
    byStem.set(stem, name);
  }
  return byStem;
}

function missing(dir: string, stems: string[], otherDir: string, what: string, hint = ''): FcnError {
  const more = stems.length > 1 ? ` (and ${stems.length - 1} more)` : '';
  return new FcnError(`${join(dir, stems[0]! + '.png')}: no ${what} ${stems[0]}.png in ${otherDir}${more}${hint}`);
}

/**
 * Counts every prediction in `predDir` against the ground truth of the same stem in `gtDir`.
 * Errors (FcnError, one line naming the file): a ground truth without prediction or the reverse,
 * masks of different sizes, a file that is not an index PNG, a value that is not a class id,
 * ground truth that is void everywhere.
 */
export async function scoreFolders(predDir: string, gtDir: string, numClasses = 21, opts: ScoreOptions = {}): Promise<ConfusionMatrix> {
  const preds = await pngsByStem(predDir, 'prediction', true);
  const gts = await pngsByStem(gtDir, 'ground-truth');
  let stems: string[];
  if (opts.ids) {
    const list = opts.listName ?? 'the id list';
    for (const [have, dir, what] of [[preds, predDir, 'prediction'], [gts, gtDir, 'ground truth']] as const) {
      const absent = opts.ids.filter((id) => !have.has(id));
      if (absent.length > 0) {
        const more = absent.length > 1 ? ` (and ${absent.length - 1} more)` : '';
        throw new FcnError(`${join(dir, absent[0]! + '.png')}: no ${what} for '${absent[0]}', which ${list} lists${more}`);
      }
    }
    stems = [...new Set(opts.ids)];
  } else {
    const noPred = [...gts.keys()].filter((s) => !preds.has(s));
    if (noPred.length > 0) throw missing(gtDir, noPred, predDir, 'prediction', ' (to score a subset, pass --list, e.g. ImageSets/Segmentation/val.txt)');
    const noGt = [...preds.keys()].filter((s) => !gts.has(s));
    if (noGt.length > 0) throw missing(predDir, noGt, gtDir, 'ground truth');
    stems = [...gts.keys()];
  }

  const cm = new ConfusionMatrix(numClasses);
  for (let i = 0; i < stems.length; i++) {
    const predPath = join(predDir, preds.get(stems[i]!)!);
    const gtPath = join(gtDir, gts.get(stems[i]!)!);
    const limits = { maxPixels: opts.maxPixels };
    const [pred, gt] = await Promise.all([readMask(predPath, limits), opts.readTruth ? opts.readTruth(gtPath) : readMask(gtPath, limits)]);
    if (pred.width !== gt.width || pred.height !== gt.height) {
      throw new FcnError(
        `${predPath}: prediction is ${pred.height}x${pred.width} (HxW) but ground truth ${gtPath} is ${gt.height}x${gt.width}; they must match`,
      );
    }
    try {
      cm.add(pred.data, gt.data);
    } catch (err) {
      // ConfusionMatrix names the value and pixel; say which file held it.
      const msg = errorMessage(err);
      throw new FcnError(`${msg.startsWith('truth') ? gtPath : predPath}: ${msg}`);
    }
    opts.onProgress?.(i + 1, stems.length);
  }
  // Metrics of nothing would print as zeros that look like a (very bad) score.
  if (cm.total === 0) throw new FcnError(`${gtDir}: every ground-truth pixel is void (255); nothing to score`);
  return cm;
}

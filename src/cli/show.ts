// fcn show --data DIR [--model FILE] [--split val] [--n 4] --out FILE.png — the book's picture of
// the first n examples of a split: images, (predictions,) ground truth, and a legend.
import { extname } from 'node:path';
import { Command } from 'commander';
import { openVoc, readVocExample } from '../data/dataset.js';
import type { LabelMap, RgbImage } from '../data/image.js';
import { writeImage } from '../data/image.js';
import { VOC_CLASSES } from '../data/voc.js';
import { showExamples, type ShowExample } from '../infer/pictures.js';
import { FcnError, UsageError } from '../util/errors.js';
import { parseIntFlag } from './options.js';

/**
 * The prediction row: one mask per image, each with its image's height and width.
 * Not connected to the model yet (the lead wires loadModel/segment in here).
 */
export async function predictRow(modelPath: string, images: readonly RgbImage[]): Promise<LabelMap[]> {
  void modelPath;
  void images;
  throw new FcnError('--model: prediction is not available yet');
}

export function command(): Command {
  return new Command('show')
    .description('draw the first n examples of a split as a grid: images, predictions (with --model), ground truth, legend')
    .requiredOption('--data <dir>', 'VOC root (or a folder holding VOCdevkit/VOC2012)')
    .option('--model <file>', 'also draw a row of predictions by this model')
    .option('--split <name>', 'ImageSets/Segmentation/<name>.txt', 'val')
    .option('--n <n>', 'how many examples (columns)', parseIntFlag('--n', 1), 4)
    .requiredOption('--out <file>', 'the picture to write (.png)')
    .action(async (o: { data: string; model?: string; split: string; n: number; out: string }) => {
      if (extname(o.out).toLowerCase() !== '.png') throw new UsageError(`--out expects a .png file, got '${o.out}'`);
      const ds = await openVoc(o.data, o.split);
      const ids = ds.ids.slice(0, o.n);
      const examples: ShowExample[] = [];
      for (const id of ids) examples.push(await readVocExample(ds, id));
      if (o.model) {
        const predictions = await predictRow(o.model, examples.map((e) => e.image));
        examples.forEach((e, i) => (e.prediction = predictions[i]));
      }
      await writeImage(o.out, await showExamples(examples, { classNames: VOC_CLASSES }));
      process.stdout.write(`wrote ${o.out}: ${ids.length} example${ids.length === 1 ? '' : 's'} of ${o.split}\n`);
    });
}

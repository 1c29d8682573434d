// fcn show --data DIR [--model FILE] [--split val] [--n 4] --out FILE.png — the book's picture of
// the first n examples of a split: images, (predictions,) ground truth, and a legend.
import { extname } from 'node:path';
import { Command } from 'commander';
import { openVoc, readVocExample } from '../data/dataset.js';
import { writeImage } from '../data/image.js';
import { VOC_CLASSES, type Rgb } from '../data/voc.js';
import { showExamples, type ShowExample } from '../render/pictures.js';
import { loadModel } from '../infer/model.js';
import { UsageError } from '../util/errors.js';
import { ARCH_HELP, parseArch, parseIntFlag, parseMaxPixels } from './options.js';

export function command(): Command {
  return new Command('show')
    .description('draw the first n examples of a split as a grid: images, predictions (with --model), ground truth, legend')
    .requiredOption('--data <dir>', 'VOC root (or a folder holding VOCdevkit/VOC2012)')
    .option('--model <file|name>', 'also draw a row of predictions by this model')
    .option('--arch <name>', ARCH_HELP, parseArch)
    .option('--split <name>', 'ImageSets/Segmentation/<name>.txt', 'val')
    .option('--n <n>', 'how many examples (columns)', parseIntFlag('--n', 1), 4)
    .requiredOption('--out <file>', 'the picture to write (.png)')
    .option('--max-pixels <n>', 'largest image or mask accepted, in pixels (default 100000000; env FCN_MAX_PIXELS)', parseMaxPixels)
    .action(async (o: { data: string; model?: string; arch?: string; split: string; n: number; out: string; maxPixels?: number }) => {
      if (extname(o.out).toLowerCase() !== '.png') throw new UsageError(`--out expects a .png file, got '${o.out}'`);
      const ds = await openVoc(o.data, o.split, { maxPixels: o.maxPixels });
      const ids = ds.ids.slice(0, o.n);
      const examples: ShowExample[] = [];
      for (const id of ids) examples.push(await readVocExample(ds, id));
      let classNames: readonly string[] = VOC_CLASSES;
      let colormap: readonly Rgb[] | undefined;
      if (o.model) {
        // the prediction row: full images through the same path as fcn predict
        const model = await loadModel(o.model, { arch: o.arch });
        try {
          for (const e of examples) e.prediction = await model.predict(e.image);
          classNames = model.meta.classes;
          colormap = model.meta.colors;
        } finally {
          await model.dispose();
        }
      }
      await writeImage(o.out, await showExamples(examples, { classNames, colormap }));
      process.stdout.write(`wrote ${o.out}: ${ids.length} example${ids.length === 1 ? '' : 's'} of ${o.split}\n`);
    });
}

// fcn show --data DIR [--model FILE] [--split val] [--n 4] --out FILE.png — the book's picture of
// the first n examples of a split: images, (predictions,) ground truth, and a legend.
import { extname } from 'node:path';
import { Command } from 'commander';
import { readExample } from '../data/dataset.js';
import { addDataOptions, checkDatasetFitsModel, openDataFromFlags, modelLabels, type DataFlags } from './data.js';
import { writeImage } from '../data/image.js';
import type { Rgb } from '../data/voc.js';
import { showExamples, type ShowExample } from '../render/pictures.js';
import { loadModel } from '../infer/model.js';
import { UsageError } from '../util/errors.js';
import { checkOutputFile } from '../util/fs.js';
import { ARCH_HELP, parseArch, parseVariant, VARIANT_HELP, foldVariant, parseIntFlag, parseMaxPixels } from './options.js';

export function command(): Command {
  const cmd = new Command('show')
    .description('draw the first n examples of a split as a grid: images, predictions (with --model), ground truth, legend')
    .requiredOption('--data <dir>', 'a dataset in any layout (VOC, CVAT export, mmsegmentation, ADE20K), or the folder holding it')
    .option('--model <file|name>', 'also draw a row of predictions by this model')
    .option('--arch <name>', ARCH_HELP, parseArch)
    .option('--variant <name>', VARIANT_HELP, parseVariant)
    .hook('preAction', foldVariant)
    .option('--split <name>', 'the split to draw', 'val')
    .option('--n <n>', 'how many examples (columns)', parseIntFlag('--n', 1), 4)
    .requiredOption('--out <file>', 'the picture to write (.png)')
    .option('--max-pixels <n>', 'largest image or mask accepted, in pixels (default 100000000; env FCN_MAX_PIXELS)', parseMaxPixels);
  return addDataOptions(cmd)
    .action(async (o: DataFlags & { data: string; model?: string; arch?: string; split: string; n: number; out: string; maxPixels?: number }) => {
      if (extname(o.out).toLowerCase() !== '.png') throw new UsageError(`--out expects a .png file, got '${o.out}'`);
      checkOutputFile(o.out);
      const model = o.model ? await loadModel(o.model, { arch: o.arch }) : undefined;
      try {
        // a dataset without a class file is read in the model's classes and colours
        const ds = await openDataFromFlags(o.data, o.split, o, { maxPixels: o.maxPixels, defaultLabels: model ? modelLabels(model.meta, o.model!) : undefined });
        const ids = ds.ids.slice(0, o.n);
        const examples: ShowExample[] = [];
        for (const id of ids) examples.push(await readExample(ds, id));
        // the dataset's names and colours; the model's own when it draws a prediction row
        let classNames: readonly string[] = ds.labels.classes;
        let colormap: readonly Rgb[] | undefined = ds.labels.colors;
        if (model) {
          checkDatasetFitsModel(ds, model.numClasses, o.model!);
          // the prediction row: full images through the same path as fcn predict
          for (const e of examples) e.prediction = await model.predict(e.image);
          classNames = model.meta.classes;
          colormap = model.meta.colors;
        }
        await writeImage(o.out, await showExamples(examples, { classNames, colormap }));
        process.stdout.write(`wrote ${o.out}: ${ids.length} example${ids.length === 1 ? '' : 's'} of ${o.split}\n`);
      } finally {
        await model?.dispose();
      }
    });
}

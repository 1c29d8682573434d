// fcn eval --model FILE --data DIR [--split val] [--json FILE]
import { Command } from 'commander';
import { checkVocFiles, openVoc } from '../data/dataset.js';
import { loadModel } from '../infer/model.js';
import { evaluate } from '../infer/evaluate.js';
import { metricsReport, formatMetricsTable } from '../eval/confusion.js';
import { Progress } from '../util/progress.js';
import { writeFileAtomic } from '../util/fs.js';
import { printableLines } from '../util/text.js';
import { parseIntFlag, parseMaxPixels } from './options.js';

export function command(): Command {
  return new Command('eval')
    .description('score a model on a split (full images, one confusion matrix): pixel acc, mean acc, mIoU, fwIoU, per-class IoU')
    .requiredOption('--model <file>', 'checkpoint (.safetensors) or the book\'s PyTorch state_dict (.pth)')
    .requiredOption('--data <dir>', 'VOC root (or a folder holding VOCdevkit/VOC2012)')
    .option('--split <name>', 'ImageSets/Segmentation/<name>.txt', 'val')
    .option('--json <file>', 'also write the metrics as JSON')
    .option('--limit <n>', 'only the first n images of the split', parseIntFlag('--limit', 1))
    .option('--max-pixels <n>', 'largest image or mask accepted, in pixels (default 100000000; env FCN_MAX_PIXELS)', parseMaxPixels)
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)', parseIntFlag('--threads', 1))
    .action(async (o: { model: string; data: string; split: string; json?: string; limit?: number; maxPixels?: number; threads?: number }) => {
      const ds = await openVoc(o.data, o.split, { maxPixels: o.maxPixels });
      // every file's header before the model loads: a bad file fails in seconds, not after an hour of images
      await checkVocFiles(ds, o.limit !== undefined ? ds.ids.slice(0, o.limit) : ds.ids);
      const model = await loadModel(o.model, { threads: o.threads });
      try {
        const total = o.limit !== undefined ? Math.min(o.limit, ds.ids.length) : ds.ids.length;
        // a bar on a terminal; in logs it would only add lines (as fcn score)
        const bar = process.stderr.isTTY ? new Progress({ total, label: `eval ${o.split}`, unit: 'img' }) : undefined;
        const cm = await evaluate(model, ds, { limit: o.limit, onProgress: (done) => bar?.update(done) });
        bar?.finish();
        const report = metricsReport(cm, model.meta.classes);
        // class names come from the checkpoint: printed with control characters escaped
        process.stdout.write(printableLines(formatMetricsTable(report)) + '\n');
        if (o.json) await writeFileAtomic(o.json, JSON.stringify(report, null, 2) + '\n');
      } finally {
        await model.dispose();
      }
    });
}

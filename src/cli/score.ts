// fcn score --pred DIR --gt DIR [--json FILE] [--list FILE] — metrics for prediction PNGs already on disk.
import { Command } from 'commander';
import { VOC_CLASSES } from '../data/voc.js';
import { readIdList } from '../data/dataset.js';
import { metricsReport, formatMetricsTable } from '../eval/confusion.js';
import { scoreFolders } from '../infer/score.js';
import { Progress } from '../util/progress.js';
import { writeFileAtomic } from '../util/fs.js';
import { parseMaxPixels } from './options.js';

export function command(): Command {
  return new Command('score')
    .description('score prediction masks against ground-truth masks (index PNGs matched by file stem): pixel acc, mean acc, mIoU, fwIoU, per-class IoU')
    .requiredOption('--pred <dir>', 'folder of predicted masks <id>.png (palette or grayscale, value = class id)')
    .requiredOption('--gt <dir>', 'folder of ground-truth masks <id>.png (255 = void, not counted)')
    .option('--json <file>', 'also write the metrics as JSON')
    .option('--list <file>', 'score only the ids in this list (one per line, e.g. VOC2012/ImageSets/Segmentation/val.txt); without it every mask in both folders must pair up')
    .option('--max-pixels <n>', 'largest mask accepted, in pixels (default 100000000; env FCN_MAX_PIXELS)', parseMaxPixels)
    .action(async (o: { pred: string; gt: string; json?: string; list?: string; maxPixels?: number }) => {
      const ids = o.list ? await readIdList(o.list) : undefined;
      // Reading masks is quick: a bar helps on a terminal, but in logs it would only add noise.
      let bar: Progress | undefined;
      const cm = await scoreFolders(o.pred, o.gt, VOC_CLASSES.length, {
        ids, listName: o.list, maxPixels: o.maxPixels,
        onProgress: process.stderr.isTTY
          ? (done, total) => (bar ??= new Progress({ total, label: 'score', unit: 'img', format: (n) => n.toFixed(0) })).update(done)
          : undefined,
      });
      bar?.finish();
      const report = metricsReport(cm, VOC_CLASSES);
      process.stdout.write(formatMetricsTable(report));
      if (o.json) await writeFileAtomic(o.json, JSON.stringify(report, null, 2) + '\n');
    });
}

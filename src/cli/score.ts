// fcn score --pred DIR --gt DIR [--json FILE] [--list FILE] — metrics for prediction PNGs already on disk.
import { Command } from 'commander';
import { resolve } from 'node:path';
import { labelsFromNames, readLabelMask, vocLabels } from '../data/labels.js';
import { maskFolderLabels } from '../data/layouts.js';
import { parseClasses } from './data.js';
import { readIdList } from '../data/dataset.js';
import { metricsReport, formatMetricsTable } from '../eval/confusion.js';
import { scoreFolders } from '../infer/score.js';
import { Progress } from '../util/progress.js';
import { checkOutputFile, writeFileAtomic } from '../util/fs.js';
import { UsageError } from '../util/errors.js';
import { parseMaxPixels } from './options.js';
import { printableLines } from '../util/text.js';

export function command(): Command {
  return new Command('score')
    .description('score prediction masks against ground-truth masks (index PNGs matched by file stem): pixel acc, mean acc, mIoU, fwIoU, per-class IoU')
    .option('--pred <dir>', 'folder of predicted masks <id>.png (palette or grayscale, value = class id)')
    .option('--gt <dir>', 'folder of ground-truth masks <id>.png (255 = void, not counted)')
    .option('--json <file>', 'also write the metrics as JSON')
    .option('--list <file>', 'score only the ids in this list (one per line, e.g. VOC2012/ImageSets/Segmentation/val.txt); without it every mask in both folders must pair up')
    .option('--max-pixels <n>', 'largest mask accepted, in pixels (default 100000000; env FCN_MAX_PIXELS)', parseMaxPixels)
    .option('--merge <json...>', 'sum the confusion matrices of these `fcn score --json` files (e.g. one per shard) into the full numbers')
    .option('--classes <a,b,c>', "class names, index 0 first (default: the labelmap.txt or classes.json in or beside --gt, an mmsegmentation folder's for its ann_dir/<split>, ADE20K's 150 for its annotations/<split>, else VOC's 21)", parseClasses)
    .action(async (o: { pred?: string; gt?: string; json?: string; list?: string; merge?: string[]; maxPixels?: number; classes?: string[] }) => {
      if (o.merge) {
        if (o.pred || o.gt || o.list) throw new UsageError('--merge takes metrics JSON files only (no --pred, --gt or --list)');
        const { mergeMetricsFiles } = await import('../queue/merge.js');
        const merged = await mergeMetricsFiles(o.merge);
        const r = metricsReport(merged.matrix, merged.classes);
        process.stdout.write(printableLines(formatMetricsTable(r)));
        if (o.json) await writeFileAtomic(o.json, JSON.stringify(r, null, 2) + '\n');
        return;
      }
      if (!o.pred) throw new UsageError("required option '--pred <dir>' not specified");
      if (!o.gt) throw new UsageError("required option '--gt <dir>' not specified");
      if (o.json) checkOutputFile(o.json);
      const ids = o.list ? await readIdList(o.list) : undefined;
      // the dataset's classes: colour masks (a CVAT export's SegmentationClass) decode through them
      const gt = o.gt;
      const labels = o.classes ? labelsFromNames(o.classes, '--classes') : (await maskFolderLabels(resolve(gt))) ?? vocLabels();
      const custom = labels.source !== 'VOC';
      // Reading masks is quick: a bar helps on a terminal, but in logs it would only add noise.
      let bar: Progress | undefined;
      const cm = await scoreFolders(o.pred, o.gt, labels.classes.length, {
        ids, listName: o.list, maxPixels: o.maxPixels,
        readTruth: custom ? (path) => readLabelMask(path, labels, { maxPixels: o.maxPixels }) : undefined,
        onProgress: process.stderr.isTTY
          ? (done, total) => (bar ??= new Progress({ total, label: 'score', unit: 'img', format: (n) => n.toFixed(0) })).update(done)
          : undefined,
      });
      bar?.finish();
      const report = metricsReport(cm, labels.classes);
      process.stdout.write(printableLines(formatMetricsTable(report)));
      if (o.json) await writeFileAtomic(o.json, JSON.stringify(report, null, 2) + '\n');
    });
}

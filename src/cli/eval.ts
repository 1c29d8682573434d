// fcn eval --model FILE --data DIR [--split val] [--json FILE] [--queue URL] [--shard K/N]
// fcn eval --merge A.json B.json ... [--json FILE]
import { Command } from 'commander';
import { checkVocFiles } from '../data/dataset.js';
import { addDataOptions, checkDatasetFitsModel, openDataFromFlags, modelLabels, type DataFlags } from './data.js';
import { vocLabels } from '../data/labels.js';
import type { Dataset } from '../data/dataset.js';
import { loadModel } from '../infer/model.js';
import { evaluate } from '../infer/evaluate.js';
import { metricsReport, formatMetricsTable, type ConfusionMatrix } from '../eval/confusion.js';
import { Progress } from '../util/progress.js';
import { checkOutputFile, writeFileAtomic } from '../util/fs.js';
import { UsageError } from '../util/errors.js';
import { selectShard, type Shard } from '../queue/shard.js';
import { ARCH_HELP, MODEL_HELP, parseArch, parseVariant, VARIANT_HELP, foldVariant, parseIntFlag, parseMaxPixels } from './options.js';
import { printableLines } from '../util/text.js';
import { QUEUE_HELP, SHARD_HELP, noWorkerNotice, queueFlag, shardFlag } from './scale-options.js';

interface EvalFlags extends DataFlags {
  model?: string; arch?: string; data?: string; split: string; json?: string; limit?: number; resize?: number; threads?: number;
  queue?: string; queueName: string; shard?: Shard; merge?: string[]; maxPixels?: number;
}

async function report(cm: ConfusionMatrix, classes: readonly string[], json?: string): Promise<void> {
  const r = metricsReport(cm, classes);
  // class names come from the checkpoint: printed with control characters escaped
  process.stdout.write(printableLines(formatMetricsTable(r)) + '\n');
  if (json) await writeFileAtomic(json, JSON.stringify(r, null, 2) + '\n');
}

/**
 * The names the report keys its classes by: the dataset's (its labelmap.txt or classes.json, or
 * --classes), as DESIGN.md's perClassIoU asks; the model's where the dataset declares none.
 */
function reportClasses(ds: Dataset, modelClasses: readonly string[], model: string): readonly string[] {
  if (ds.labels.source === vocLabels().source) return modelClasses;
  checkDatasetFitsModel(ds, modelClasses.length, model);
  return ds.labels.classes;
}

export function command(): Command {
  const cmd = new Command('eval')
    .description('score a model on a split (full images, one confusion matrix): pixel acc, mean acc, mIoU, fwIoU, per-class IoU')
    .option('--model <file|name>', MODEL_HELP)
    .option('--arch <name>', ARCH_HELP, parseArch)
    .option('--variant <name>', VARIANT_HELP, parseVariant)
    .hook('preAction', foldVariant)
    .option('--data <dir>', 'a dataset in any layout (VOC, CVAT export, mmsegmentation, ADE20K), or the folder holding it')
    .option('--split <name>', "the split to score (val: every layout's validation split)", 'val')
    .option('--json <file>', 'also write the metrics as JSON')
    .option('--resize <n>', 'resize each image and mask so the shorter side is n pixels first, as torchvision\'s evaluation does (520)', parseIntFlag('--resize', 1))
    .option('--limit <n>', 'only the first n images of the split', parseIntFlag('--limit', 1))
    .option('--max-pixels <n>', 'largest image or mask accepted, in pixels (default 100000000; env FCN_MAX_PIXELS)', parseMaxPixels)
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)', parseIntFlag('--threads', 1))
    .option('--queue <url>', QUEUE_HELP, queueFlag)
    .option('--queue-name <name>', 'BullMQ queue name (the workers\' --name)', 'fcn')
    .option('--shard <K/N>', SHARD_HELP, shardFlag)
    .option('--merge <json...>', 'sum the confusion matrices of these `fcn eval --json` files (e.g. one per shard) into the full numbers');
  return addDataOptions(cmd)
    .action(async (o: EvalFlags) => {
      if (o.merge) {
        if (o.model || o.data || o.queue || o.shard) throw new UsageError('--merge takes metrics JSON files only (no --model, --data, --queue or --shard)');
        const { mergeMetricsFiles } = await import('../queue/merge.js');
        const merged = await mergeMetricsFiles(o.merge);
        return report(merged.matrix, merged.classes, o.json);
      }
      if (!o.model) throw new UsageError("required option '--model <file>' not specified");
      if (o.queue && o.resize !== undefined) throw new UsageError('--resize is not available with --queue (workers score images at their own size)');
      if (!o.data) throw new UsageError("required option '--data <dir>' not specified");
      if (o.json) checkOutputFile(o.json);
      // the model's card reads a dataset that has no class file (its classes and colours)
      const model = o.queue ? undefined : await loadModel(o.model, { threads: o.threads, arch: o.arch });
      try {
        const ds = await openDataFromFlags(o.data, o.split, o, { maxPixels: o.maxPixels, defaultLabels: model ? modelLabels(model.meta, o.model) : undefined });
        if (model) checkDatasetFitsModel(ds, model.numClasses, o.model);
        const first = o.limit !== undefined ? ds.ids.slice(0, o.limit) : ds.ids;
        const ids = o.shard ? selectShard(first, o.shard, (id) => id) : first;
        // every file's header before the first image is scored: a bad file fails in seconds, not after an hour of images
        await checkVocFiles(ds, ids);
        // a bar on a terminal; in logs it would only add lines (as fcn score)
        const bar = process.stderr.isTTY ? new Progress({ total: ids.length, label: `eval ${o.split}`, unit: 'img' }) : undefined;
        if (!model) {
          const { evaluateQueued } = await import('../queue/producer.js');
          const r = await evaluateQueued(ds, {
            queue: o.queue!, name: o.queueName, model: o.model, arch: o.arch, ids, onProgress: (done) => bar?.update(done),
            onNoWorkers: noWorkerNotice(o.queueName),
          });
          bar?.finish();
          process.stderr.write(`queue: ${r.jobs} jobs, ${r.retried} retried\n`);
          return report(r.matrix, reportClasses(ds, r.classes, o.model), o.json);
        }
        const cm = await evaluate(model, ds, { ids, resize: o.resize, onProgress: (done) => bar?.update(done) });
        bar?.finish();
        await report(cm, reportClasses(ds, model.meta.classes, o.model), o.json);
      } finally {
        await model?.dispose();
      }
    });
}

// fcn predict --model FILE [--out DIR] [--overlay] [--fail-fast] IMAGE...
// A batch segments every readable image; each unreadable one is named on its own line on stderr as
// it is met, and the run exits 1 at the end with the count (--fail-fast: stop at the first).
import { Command } from 'commander';
import { loadModel, MIN_TILE } from '../infer/model.js';
import { checkOutputsSpareInputs, checkStems, failureSummary, predictFiles, probeImageFiles, stemOf } from '../infer/predict.js';
import type { ClassShare } from '../infer/model.js';
import { ARCH_HELP, MODEL_HELP, parseArch, parseVariant, VARIANT_HELP, foldVariant, parseIntFlag, parseMaxPixels } from './options.js';
import { printable } from '../util/text.js';
import { QUEUE_HELP, SHARD_HELP, noWorkerNotice, queueFlag, shardFlag } from './scale-options.js';
import { selectShard, type Shard } from '../queue/shard.js';
import { Progress } from '../util/progress.js';
import { FcnError } from '../util/errors.js';

export function command(): Command {
  return new Command('predict')
    .description('segment images: writes DIR/<stem>.png (VOC palette PNG, pixel value = class id) for each image; ' +
      'unreadable images are named on stderr and skipped, and the run exits 1 at the end if any were')
    .requiredOption('--model <file|name>', MODEL_HELP)
    .option('--arch <name>', ARCH_HELP, parseArch)
    .option('--variant <name>', VARIANT_HELP, parseVariant)
    .hook('preAction', foldVariant)
    .option('--out <dir>', 'output folder', 'predictions')
    .option('--overlay', 'also write <stem>.overlay.png (image blended with the colour mask)')
    .option('--fail-fast', 'stop at the first unreadable image instead of skipping it')
    .option('--tile <n>', 'images with a side longer than this are predicted in overlapping tiles', parseIntFlag('--tile', MIN_TILE), 1024)
    .option('--max-pixels <n>', 'largest image accepted, in pixels (default 100000000; env FCN_MAX_PIXELS)', parseMaxPixels)
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)', parseIntFlag('--threads', 1))
    .option('--queue <url>', QUEUE_HELP, queueFlag)
    .option('--queue-name <name>', 'BullMQ queue name (the workers\' --name)', 'fcn')
    .option('--shard <K/N>', SHARD_HELP, shardFlag)
    .argument('<images...>', 'JPEG/PNG/WebP images')
    .action(async (all: string[], o: { model: string; arch?: string; out: string; overlay?: boolean; failFast?: boolean; tile: number; maxPixels?: number; threads?: number; queue?: string; queueName: string; shard?: Shard }, cmd: Command) => {
      const images = o.shard ? selectShard(all, o.shard, stemOf) : all;
      checkStems(images);
      checkOutputsSpareInputs(images, o.out, o.overlay);
      const line = (file: string, r: { width: number; height: number; classes: ClassShare[]; maskPath: string }) => {
        const top = r.classes.slice(0, 4).map((c) => `${printable(c.name)} ${(c.fraction * 100).toFixed(1)}%`).join(', ');
        process.stdout.write(`${printable(file)} -> ${printable(r.maskPath)} (${r.width}x${r.height}): ${top}\n`);
      };
      if (o.queue) {
        const { predictQueued } = await import('../queue/producer.js');
        const bar = new Progress({ total: images.length, label: 'predict', unit: 'img' });
        const r = await predictQueued(images, {
          queue: o.queue, name: o.queueName, model: o.model, arch: o.arch, outDir: o.out, overlay: o.overlay,
          // --tile when given; else the workers tile as they were started to
          tileSize: cmd.getOptionValueSource('tile') === 'cli' ? o.tile : undefined,
          maxPixels: o.maxPixels,
          onImage: line,
          onNoWorkers: noWorkerNotice(o.queueName),
          onFailure: (_file, message) => process.stderr.write(`fcn: ${printable(message)}\n`),
          onProgress: (done) => bar.update(done),
        });
        bar.finish();
        process.stderr.write(`queue: ${r.jobs} jobs, ${r.retried} retried\n`);
        if (r.failed.length > 0) throw new FcnError(`${r.failed.length} of ${images.length} images failed (named above)`);
        return;
      }
      // one input: its error is the run's error, printed once by main
      const failFast = o.failFast || images.length === 1;
      const report = (_file: string, err: Error) => process.stderr.write(`fcn: ${printable(err.message)}\n`);
      // headers first (no decoding): missing, non-image and oversized files are named before the model loads
      const probed = await probeImageFiles(images, { failFast, maxPixels: o.maxPixels, onError: report });
      if (probed.readable.length === 0) throw failureSummary({ written: [], failed: probed.failed }, images.length);
      const model = await loadModel(o.model, { threads: o.threads, tileSize: o.tile, arch: o.arch });
      let result;
      try {
        result = await predictFiles(model, probed.readable, {
          outDir: o.out,
          overlay: o.overlay,
          maxPixels: o.maxPixels,
          failFast,
          onImage: line,
          onError: report,
        });
      } finally {
        await model.dispose();
      }
      const failed = [...probed.failed, ...result.failed];
      if (failed.length > 0) throw failureSummary({ written: result.written, failed }, images.length);
    });
}

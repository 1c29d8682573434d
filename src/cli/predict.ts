// fcn predict --model FILE [--out DIR] [--overlay] IMAGE...
import { Command } from 'commander';
import { loadModel } from '../infer/model.js';
import { predictFiles, stemOf } from '../infer/predict.js';
import type { ClassShare } from '../infer/model.js';
import { parseIntFlag } from './options.js';
import { QUEUE_HELP, SHARD_HELP, queueFlag, shardFlag } from './scale-options.js';
import { selectShard, type Shard } from '../queue/shard.js';
import { Progress } from '../util/progress.js';
import { FcnError } from '../util/errors.js';

export function command(): Command {
  return new Command('predict')
    .description('segment images: writes DIR/<stem>.png (VOC palette PNG, pixel value = class id) for each image')
    .requiredOption('--model <file>', 'checkpoint (.safetensors) or the book\'s PyTorch state_dict (.pth)')
    .option('--out <dir>', 'output folder', 'predictions')
    .option('--overlay', 'also write <stem>.overlay.png (image blended with the colour mask)')
    .option('--tile <n>', 'images with a side longer than this are predicted in overlapping tiles', parseIntFlag('--tile', 64), 1024)
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)', parseIntFlag('--threads', 1))
    .option('--queue <url>', QUEUE_HELP, queueFlag)
    .option('--queue-name <name>', 'BullMQ queue name (the workers\' --name)', 'fcn')
    .option('--shard <K/N>', SHARD_HELP, shardFlag)
    .argument('<images...>', 'JPEG/PNG/WebP images')
    .action(async (all: string[], o: { model: string; out: string; overlay?: boolean; tile: number; threads?: number; queue?: string; queueName: string; shard?: Shard }) => {
      const images = o.shard ? selectShard(all, o.shard, stemOf) : all;
      const line = (file: string, r: { width: number; height: number; classes: ClassShare[]; maskPath: string }) => {
        const top = r.classes.slice(0, 4).map((c) => `${c.name} ${(c.fraction * 100).toFixed(1)}%`).join(', ');
        process.stdout.write(`${file} -> ${r.maskPath} (${r.width}x${r.height}): ${top}\n`);
      };
      if (o.queue) {
        const { predictQueued } = await import('../queue/producer.js');
        const bar = new Progress({ total: images.length, label: 'predict', unit: 'img' });
        const r = await predictQueued(images, {
          queue: o.queue, name: o.queueName, model: o.model, outDir: o.out, overlay: o.overlay,
          onImage: line,
          onFailure: (_file, message) => process.stderr.write(`fcn: ${message}\n`),
          onProgress: (done) => bar.update(done),
        });
        bar.finish();
        process.stderr.write(`queue: ${r.jobs} jobs, ${r.retried} retried\n`);
        if (r.failed.length > 0) throw new FcnError(`${r.failed.length} of ${images.length} images failed (named above)`);
        return;
      }
      const model = await loadModel(o.model, { threads: o.threads, tileSize: o.tile });
      try {
        await predictFiles(model, images, {
          outDir: o.out,
          overlay: o.overlay,
          onImage: line,
        });
      } finally {
        await model.dispose();
      }
    });
}

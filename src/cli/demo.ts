// fcn demo [--out runs/demo] [--threads N] [--epochs N]: what `npm start` runs. Synthetic data if
// absent, a from-scratch FCN trained on the CPU in a few minutes, and where to look at the results.
import { Command } from 'commander';
import { dirname, join } from 'node:path';
import { demo, DEMO_SETTINGS } from '../train/demo.js';
import { backboneHint } from '../net/download.js';
import { parseIntFlag } from './options.js';
import { flagOf, shortPath } from './train.js';

function minutes(seconds: number): string {
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds - 60 * m);
  return m > 0 ? `${m} min ${s} s` : `${s} s`;
}

export function command(): Command {
  const s = DEMO_SETTINGS;
  return new Command('demo')
    .description(
      `generate the synthetic shapes dataset (if absent) and train the FCN on it from scratch on the CPU ` +
      `(FCN-${s.variant.slice(3)}; ${s.synth.train} train / ${s.synth.val} val images, ${s.epochs} epochs of ${s.crop[0]}x${s.crop[1]} crops, batch ${s.batchSize}, ` +
      `${s.optimizer === 'adamw' ? 'AdamW' : 'SGD'}, lr ${s.lr}${s.lrSchedule === 'poly' ? ' with poly decay' : ''}): a few minutes on 2 cores; writes OUT/train/{curves,grid}.png and checkpoints`,
    )
    .option('--out <dir>', 'demo folder: the dataset goes to OUT/data, the run to OUT/train', 'runs/demo')
    .option('--epochs <n>', `epochs (default ${s.epochs})`, parseIntFlag('--epochs', 1))
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)', parseIntFlag('--threads', 1))
    .action(async (o: { out: string; epochs?: number; threads?: number }) => {
      const print = (line: string) => process.stdout.write(line + '\n');
      const res = await demo({ out: o.out, epochs: o.epochs, threads: o.threads, progress: true, log: print, optionName: flagOf });
      const t = res.train;
      const f = t.final!;
      print('');
      print(`done in ${minutes(res.seconds)}: val pixel accuracy ${f.testAccuracy.toFixed(3)}, val mIoU ${f.testMeanIoU.toFixed(3)} ` +
        `after ${f.epoch} epochs (best mIoU ${t.best!.testMeanIoU.toFixed(3)} at epoch ${t.best!.epoch}), trained from scratch`);
      print(`  predictions (image / prediction / truth): ${shortPath(t.files.grid!)}`);
      print(`  training curves: ${shortPath(t.files.curves)}; per-epoch numbers: ${shortPath(t.files.metrics)}`);
      print(`  model: ${shortPath(t.files.best)} — try: npx fcn predict --model ${shortPath(t.files.best)} --out ${shortPath(join(dirname(res.data), 'predictions'))} ${shortPath(join(res.data, 'JPEGImages', 'val_000000.jpg'))}`);
      if (!res.cachedBackbone) {
        print('');
        print('The book fine-tunes an ImageNet-trained ResNet-18, which this machine does not have:');
        for (const line of backboneHint().split('\n').slice(1)) print(`  ${line}`);
      }
    });
}

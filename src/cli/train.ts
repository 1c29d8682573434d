// fcn train --data DIR [--out DIR] [--epochs 5] [--batch-size 32] [--crop 320x480] [--lr 0.001]
//           [--wd 1e-3] [--momentum 0] [--freeze-backbone] [--backbone FILE] [--init FILE]
//           [--resume] [--seed S] [--threads N]  (+ --variant, --eval-limit, --small, --flip, --scratch, --grid)
import { Command, Option } from 'commander';
import { relative } from 'node:path';
import { train, TRAIN_DEFAULTS, LR_SCHEDULES, type LrSchedule } from '../train/loop.js';
import { FCN_VARIANTS, type FcnVariant } from '../model/fcn.js';
import type { SmallImages } from '../data/batches.js';
import { parseFloatFlag, parseIntFlag, parseSize } from './options.js';

interface TrainFlags {
  data: string;
  out: string;
  epochs: number;
  batchSize: number;
  crop: [number, number];
  lr: number;
  lrSchedule: LrSchedule;
  wd: number;
  momentum: number;
  freezeBackbone?: boolean;
  backbone?: string;
  init?: string;
  resume?: boolean;
  seed: number;
  threads?: number;
  variant: FcnVariant;
  evalLimit?: number;
  small: SmallImages;
  flip?: boolean;
  scratch?: boolean;
  grid: number;
}

/** A path as short as it can be said from the current folder. */
export function shortPath(p: string): string {
  const rel = relative(process.cwd(), p);
  return rel && !rel.startsWith('..') ? rel : p;
}

export function command(): Command {
  const d = TRAIN_DEFAULTS;
  return new Command('train')
    .description(
      'train the FCN as the book does (SGD over random crops of the train split, val scored on full images each epoch); ' +
      'writes OUT/last.safetensors, OUT/best.safetensors (best val mIoU), OUT/metrics.jsonl, OUT/curves.png and OUT/grid.png',
    )
    .requiredOption('--data <dir>', 'VOC root (or a folder holding VOCdevkit/VOC2012); trains on the train split, scores on val')
    .option('--out <dir>', 'output folder', d.out)
    .option('--epochs <n>', 'epochs (with --resume: the total to reach)', parseIntFlag('--epochs', 1), d.epochs)
    .option('--batch-size <n>', 'images per SGD step (the last incomplete batch of an epoch is dropped)', parseIntFlag('--batch-size', 1), d.batchSize)
    .addOption(new Option('--crop <HxW>', 'random crop size, multiples of 32; smaller images are dropped (see --small)').argParser(parseSize('--crop')).default(d.crop, `${d.crop[0]}x${d.crop[1]}`))
    .option('--lr <x>', 'learning rate (the loss is summed over the batch, as the book)', parseFloatFlag('--lr', 0), d.lr)
    .addOption(new Option('--lr-schedule <name>', "constant (the book's) or poly: lr·(1 - step/steps)^0.9 over the planned epochs").choices([...LR_SCHEDULES]).default(d.lrSchedule))
    .option('--wd <x>', 'weight decay', parseFloatFlag('--wd', 0), d.weightDecay)
    .option('--momentum <x>', 'SGD momentum, 0 <= x < 1', parseFloatFlag('--momentum', 0), d.momentum)
    .option('--freeze-backbone', 'train only the head (1x1 conv and transposed conv); the ResNet body keeps its weights and BN statistics')
    .option('--backbone <file>', "torchvision's ResNet-18 ImageNet weights (resnet18-f37072fd.pth; default: the cached copy if `fcn download resnet18` fetched it)")
    .option('--init <file>', 'start from a full checkpoint (ours, or the book\'s PyTorch state_dict)')
    .option('--scratch', 'start from random weights even when ImageNet weights are cached')
    .option('--resume', 'continue the run saved in OUT/last.safetensors (same options; --epochs may be raised)')
    .option('--seed <n>', 'seeds the initial weights, the data order and the crops', parseIntFlag('--seed', 0), d.seed)
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)', parseIntFlag('--threads', 1))
    .addOption(new Option('--variant <name>', 'architecture: the book\'s FCN-32s, or FCN-16s/8s with skip connections').choices([...FCN_VARIANTS]).default(d.variant))
    .option('--eval-limit <n>', 'score only the first n val images each epoch (default: all)', parseIntFlag('--eval-limit', 1))
    .addOption(new Option('--small <how>', 'training images smaller than the crop: filter (drop, as the book) or pad (pad with ignored pixels)').choices(['filter', 'pad']).default(d.small))
    .option('--flip', 'mirror training crops left-right at random (the book does not)')
    .option('--grid <n>', 'val images shown in OUT/grid.png (0: none)', parseIntFlag('--grid', 0), d.gridImages)
    .action(async (o: TrainFlags) => {
      const out = (line: string) => process.stdout.write(line + '\n');
      const res = await train({
        data: o.data, out: o.out, epochs: o.epochs, batchSize: o.batchSize, crop: o.crop, lr: o.lr, lrSchedule: o.lrSchedule, weightDecay: o.wd,
        momentum: o.momentum, freezeBackbone: o.freezeBackbone, backbone: o.backbone, init: o.init, scratch: o.scratch,
        resume: o.resume, seed: o.seed, threads: o.threads, variant: o.variant, evalLimit: o.evalLimit, small: o.small,
        flip: o.flip, gridImages: o.grid, progress: true, log: out,
      });
      const f = res.files;
      out(`checkpoints: ${shortPath(f.last)} (epoch ${res.history.length}), ${shortPath(f.best)} (epoch ${res.best?.epoch ?? '-'}, val mIoU ${res.best?.testMeanIoU.toFixed(3) ?? '-'})`);
      out(`metrics: ${shortPath(f.metrics)}; curves: ${shortPath(f.curves)}${f.grid ? `; predictions: ${shortPath(f.grid)}` : ''}`);
    });
}

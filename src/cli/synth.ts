// `fcn synth`: writes the synthetic VOC-layout dataset (see src/data/synth.ts) and says what it wrote.
import { Command } from 'commander';
import { generateSynthVoc, SYNTH_CLASSES, SYNTH_COLOURS, SYNTH_DEFAULTS, type SynthColours } from '../data/synth.js';
import { UsageError } from '../util/errors.js';
import { parseIntFlag, parseSize } from './options.js';

export function command(): Command {
  const [h, w] = SYNTH_DEFAULTS.size;
  return new Command('synth')
    .description('write a synthetic dataset in the PASCAL VOC layout (shapes decide the class; colours are random unless --colours class)')
    .requiredOption('--out <dir>', 'new (or empty) directory; it becomes the VOC root')
    .option('--train <n>', `training images (default ${SYNTH_DEFAULTS.train})`, parseIntFlag('--train', 0))
    .option('--val <n>', `validation images (default ${SYNTH_DEFAULTS.val})`, parseIntFlag('--val', 0))
    .option('--size <HxW>', `base image size; each image varies by ±40% (default ${h}x${w})`, parseSize('--size'))
    .option('--seed <s>', `random seed (default ${SYNTH_DEFAULTS.seed})`, parseIntFlag('--seed', 0))
    .option('--colours <kind>', `random (shared by all classes) or class (each shape its own hue, muted backgrounds: the demo's task) (default ${SYNTH_DEFAULTS.colours})`)
    .action(async (opts: { out: string; train?: number; val?: number; size?: [number, number]; seed?: number; colours?: string }) => {
      if (opts.colours !== undefined && !SYNTH_COLOURS.includes(opts.colours as SynthColours)) {
        throw new UsageError(`--colours expects one of ${SYNTH_COLOURS.join(', ')}, got '${opts.colours}'`);
      }
      if (opts.seed !== undefined && opts.seed >= 2 ** 32) throw new UsageError(`--seed expects an integer below 2^32, got ${opts.seed}`);
      if (opts.size && Math.min(...opts.size) < 80) {
        throw new UsageError(`--size expects both sides >= 80 (images shrink by up to 40% and objects need room), got ${opts.size.join('x')}`);
      }
      const result = await generateSynthVoc(opts.out, { train: opts.train, val: opts.val, size: opts.size, seed: opts.seed, colours: opts.colours as SynthColours | undefined });
      const { height, width } = result.sizeRange;
      const lists = [...(result.train > 0 ? ['train'] : []), ...(result.val > 0 ? ['val'] : []), 'trainval'];
      const shapes = SYNTH_CLASSES.map((c) => `${c.shape}=${c.classId}`).join(', ');
      process.stdout.write(
        `wrote ${result.train} train + ${result.val} val images to ${result.root}\n` +
          `  sizes ${height[0]}..${height[1]} x ${width[0]}..${width[1]} (HxW), classes by shape: ${shapes}\n` +
          `  lists: ImageSets/Segmentation/{${lists.join(',')}}.txt; classes: labelmap.txt (background=0)\n`,
      );
    });
}

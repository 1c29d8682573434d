// fcn upsample [--scale 2] IN.png OUT.png — the book's transposed-convolution upsampling demo.
import { Command } from 'commander';
import { readImage, writeImage } from '../data/image.js';
import { checkUpsample, upsampleImage, DEFAULT_MAX_UPSAMPLE_PIXELS, MAX_UPSAMPLE_SCALE } from '../infer/upsample.js';
import { upsampleGeometry } from '../graph/upsample.js';
import { UsageError } from '../util/errors.js';
import { parseMaxPixels } from './options.js';

function parseScale(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > MAX_UPSAMPLE_SCALE) throw new UsageError(`--scale expects an integer in 1..${MAX_UPSAMPLE_SCALE}, got '${value}'`);
  return n;
}

export function command(): Command {
  return new Command('upsample')
    .description('enlarge an image with a bilinear-initialised transposed convolution (kernel 2s, stride s, padding s/2)')
    .option('--scale <s>', `upsampling factor, 1..${MAX_UPSAMPLE_SCALE}`, parseScale, 2)
    .option('--max-pixels <n>', `largest output, in pixels (default ${DEFAULT_MAX_UPSAMPLE_PIXELS}); also the largest input`, parseMaxPixels)
    .argument('<in>', 'input image')
    .argument('<out>', 'output PNG')
    .action(async (input: string, output: string, o: { scale: number; maxPixels?: number }) => {
      const maxOutputPixels = o.maxPixels ?? DEFAULT_MAX_UPSAMPLE_PIXELS;
      const img = await readImage(input, { maxPixels: o.maxPixels });
      // the output's size is known from the input's: refuse it before any allocation
      checkUpsample(img.width, img.height, o.scale, { maxOutputPixels, name: input });
      const g = upsampleGeometry(o.scale);
      const out = await upsampleImage(img, o.scale, { maxOutputPixels, name: input });
      process.stdout.write(`transposed conv: kernel ${g.kernel}, stride ${g.stride}, padding ${g.pads.join('/')}\n`);
      process.stdout.write(`input image shape: [${img.height}, ${img.width}, 3]\n`);
      process.stdout.write(`output image shape: [${out.height}, ${out.width}, 3]\n`);
      await writeImage(output, out);
    });
}

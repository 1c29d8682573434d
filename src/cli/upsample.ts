// fcn upsample [--scale 2] IN.png OUT.png — the book's transposed-convolution upsampling demo.
import { Command } from 'commander';
import { readImage, writeImage } from '../data/image.js';
import { upsampleImage } from '../infer/upsample.js';
import { upsampleGeometry } from '../graph/upsample.js';
import { parseIntFlag } from './options.js';

export function command(): Command {
  return new Command('upsample')
    .description('enlarge an image with a bilinear-initialised transposed convolution (kernel 2s, stride s, padding s/2)')
    .option('--scale <s>', 'upsampling factor', parseIntFlag('--scale', 1), 2)
    .argument('<in>', 'input image')
    .argument('<out>', 'output PNG')
    .action(async (input: string, output: string, o: { scale: number }) => {
      const img = await readImage(input);
      const g = upsampleGeometry(o.scale);
      const out = await upsampleImage(img, o.scale);
      process.stdout.write(`transposed conv: kernel ${g.kernel}, stride ${g.stride}, padding ${g.pads.join('/')}\n`);
      process.stdout.write(`input image shape: [${img.height}, ${img.width}, 3]\n`);
      process.stdout.write(`output image shape: [${out.height}, ${out.width}, 3]\n`);
      await writeImage(output, out);
    });
}

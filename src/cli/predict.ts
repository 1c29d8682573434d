// fcn predict --model FILE [--out DIR] [--overlay] IMAGE...
import { Command } from 'commander';
import { loadModel } from '../infer/model.js';
import { predictFiles } from '../infer/predict.js';
import { parseIntFlag } from './options.js';

export function command(): Command {
  return new Command('predict')
    .description('segment images: writes DIR/<stem>.png (VOC palette PNG, pixel value = class id) for each image')
    .requiredOption('--model <file>', 'checkpoint (.safetensors) or the book\'s PyTorch state_dict (.pth)')
    .option('--out <dir>', 'output folder', 'predictions')
    .option('--overlay', 'also write <stem>.overlay.png (image blended with the colour mask)')
    .option('--tile <n>', 'images with a side longer than this are predicted in overlapping tiles', parseIntFlag('--tile', 64), 1024)
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)', parseIntFlag('--threads', 1))
    .argument('<images...>', 'JPEG/PNG/WebP images')
    .action(async (images: string[], o: { model: string; out: string; overlay?: boolean; tile: number; threads?: number }) => {
      const model = await loadModel(o.model, { threads: o.threads, tileSize: o.tile });
      try {
        await predictFiles(model, images, {
          outDir: o.out,
          overlay: o.overlay,
          onImage: (file, r) => {
            const top = r.classes.slice(0, 4).map((c) => `${c.name} ${(c.fraction * 100).toFixed(1)}%`).join(', ');
            process.stdout.write(`${file} -> ${r.maskPath} (${r.width}x${r.height}): ${top}\n`);
          },
        });
      } finally {
        await model.dispose();
      }
    });
}

// fcn export --model FILE --onnx FILE.onnx
import { Command } from 'commander';
import { loadCheckpoint } from '../weights/checkpoint.js';
import { compileExport } from '../graph/inference.js';
import { writeFileAtomic } from '../util/fs.js';

export function command(): Command {
  return new Command('export')
    .description('write the inference graph with its weights as ONNX (dynamic N/H/W; inputs "image" NCHW normalised, outputs "logits" and "mask")')
    .requiredOption('--model <file>', 'checkpoint (.safetensors) or the book\'s PyTorch state_dict (.pth)')
    .requiredOption('--onnx <file>', 'output .onnx file')
    .action(async (o: { model: string; onnx: string }) => {
      const ckpt = await loadCheckpoint(o.model);
      const bytes = compileExport(ckpt.arch, ckpt.weights, ckpt);
      await writeFileAtomic(o.onnx, bytes);
      process.stdout.write(`wrote ${o.onnx} (${(bytes.length / 1e6).toFixed(1)} MB): ${ckpt.arch.name}, ${ckpt.arch.numClasses} classes; ` +
        `input image [N,3,H,W] normalised, any H and W (padded to a multiple of ${ckpt.arch.stride} inside), outputs logits [N,${ckpt.arch.numClasses},H,W], mask [N,H,W]\n`);
    });
}

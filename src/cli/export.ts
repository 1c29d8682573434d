// fcn export --model FILE|NAME [--arch NAME] --onnx FILE.onnx
// fcn export --model FILE|NAME [--arch NAME] --format torchvision --out FILE.safetensors
import { Command } from 'commander';
import { loadCheckpoint } from '../weights/checkpoint.js';
import { encodeTorchvisionStateDict } from '../weights/torchvision.js';
import { compileExport } from '../graph/inference.js';
import { modelPath } from '../infer/named.js';
import { writeFileAtomic } from '../util/fs.js';
import { UsageError } from '../util/errors.js';
import { ARCH_HELP, MODEL_HELP, parseArch } from './options.js';

interface ExportFlags {
  model: string;
  arch?: string;
  format: string;
  onnx?: string;
  out?: string;
}

export function command(): Command {
  return new Command('export')
    .description('write the inference graph with its weights as ONNX (dynamic N/H/W; inputs "image" NCHW normalised, outputs "logits" and "mask"), ' +
      "or (--format torchvision) the weights as a .safetensors state_dict with torchvision's key names")
    .requiredOption('--model <file|name>', MODEL_HELP)
    .option('--arch <name>', ARCH_HELP, parseArch)
    .option('--format <format>', 'onnx or torchvision', 'onnx')
    .option('--onnx <file>', 'output .onnx file (--format onnx)')
    .option('--out <file>', 'output file (either format)')
    .action(async (o: ExportFlags) => {
      if (o.format !== 'onnx' && o.format !== 'torchvision') throw new UsageError(`--format expects onnx or torchvision, got '${o.format}'`);
      const out = o.out ?? (o.format === 'onnx' ? o.onnx : undefined);
      if (!out) throw new UsageError(o.format === 'onnx' ? 'fcn export needs --onnx FILE.onnx (or --out)' : 'fcn export --format torchvision needs --out FILE.safetensors');
      const ckpt = await loadCheckpoint(modelPath(o.model), { arch: o.arch });
      if (o.format === 'torchvision') {
        const bytes = encodeTorchvisionStateDict(ckpt.arch, ckpt.weights);
        await writeFileAtomic(out, bytes);
        process.stdout.write(`wrote ${out} (${(bytes.length / 1e6).toFixed(1)} MB): ${ckpt.arch.name}, ${ckpt.arch.numClasses} classes, ` +
          "torchvision's key names (model.load_state_dict(safetensors.torch.load_file(...)))\n");
        return;
      }
      const bytes = compileExport(ckpt.arch, ckpt.weights, ckpt);
      await writeFileAtomic(out, bytes);
      const pad = ckpt.arch.stride > 1 ? ` (padded to a multiple of ${ckpt.arch.stride} inside)` : '';
      process.stdout.write(`wrote ${out} (${(bytes.length / 1e6).toFixed(1)} MB): ${ckpt.arch.name}, ${ckpt.arch.numClasses} classes; ` +
        `input image [N,3,H,W] normalised, any H and W${pad}, outputs logits [N,${ckpt.arch.numClasses},H,W], mask [N,H,W]\n`);
    });
}

// fcn export --model FILE|NAME [--arch NAME] --onnx FILE.onnx
// fcn export --model FILE|NAME [--arch NAME] --format torchvision --out FILE.safetensors
// FILE may also be an .onnx file fcn export or fcn quantize wrote (its own graph, its own weights).
import { Command } from 'commander';
import { loadCheckpoint, type Checkpoint } from '../weights/checkpoint.js';
import { checkArchitectureName, encodeTorchvisionStateDict } from '../weights/torchvision.js';
import { isTorchvisionNetwork, torchvisionNetwork } from '../model/torchvision.js';
import { floatExportWeights, isOnnxPath, readFcnOnnx } from '../infer/onnx-file.js';
import { compileExport } from '../graph/inference.js';
import { modelPath } from '../infer/named.js';
import { writeFileAtomic } from '../util/fs.js';
import { FcnError, UsageError } from '../util/errors.js';
import { ARCH_HELP, MODEL_HELP, parseArch, parseVariant, VARIANT_HELP, foldVariant } from './options.js';

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
    .option('--variant <name>', VARIANT_HELP, parseVariant)
    .hook('preAction', foldVariant)
    .option('--format <format>', 'onnx or torchvision', 'onnx')
    .option('--onnx <file>', 'output .onnx file (--format onnx)')
    .option('--out <file>', 'output file (either format)')
    .action(async (o: ExportFlags) => {
      if (o.format !== 'onnx' && o.format !== 'torchvision') throw new UsageError(`--format expects onnx or torchvision, got '${o.format}'`);
      const out = o.out ?? (o.format === 'onnx' ? o.onnx : undefined);
      if (!out) throw new UsageError(o.format === 'onnx' ? 'fcn export needs --onnx FILE.onnx (or --out)' : 'fcn export --format torchvision needs --out FILE.safetensors');
      if (isOnnxPath(o.model)) return exportFromOnnx(o, out);
      const ckpt = await loadCheckpoint(modelPath(o.model), { arch: o.arch });
      if (o.format === 'torchvision') return writeTorchvision(ckpt, out, '');
      const bytes = compileExport(ckpt.arch, ckpt.weights, ckpt);
      await writeFileAtomic(out, bytes);
      const pad = ckpt.arch.stride > 1 ? ` (padded to a multiple of ${ckpt.arch.stride} inside)` : '';
      process.stdout.write(`wrote ${out} (${(bytes.length / 1e6).toFixed(1)} MB): ${ckpt.arch.name}, ${ckpt.arch.numClasses} classes; ` +
        `input image [N,3,H,W] normalised, any H and W${pad}, outputs logits [N,${ckpt.arch.numClasses},H,W], mask [N,H,W]\n`);
    });
}

async function writeTorchvision(ckpt: Pick<Checkpoint, 'arch' | 'weights'>, out: string, note: string): Promise<void> {
  const bytes = encodeTorchvisionStateDict(ckpt.arch, ckpt.weights);
  await writeFileAtomic(out, bytes);
  process.stdout.write(`wrote ${out} (${(bytes.length / 1e6).toFixed(1)} MB): ${ckpt.arch.name}, ${ckpt.arch.numClasses} classes, ` +
    `torchvision's key names (model.load_state_dict(safetensors.torch.load_file(...)))${note}\n`);
}

/**
 * An ONNX file fcn wrote: as ONNX it is already the export (float32 or int8), written again as it
 * is; as a torchvision state_dict its float32 parameters are read back from the graph. The graph
 * holds only what inference runs, so a torchvision network's auxiliary head is not in it: the
 * state_dict is that of the network built with aux_loss=False.
 */
async function exportFromOnnx(o: ExportFlags, out: string): Promise<void> {
  const file = await readFcnOnnx(o.model);
  if (o.arch !== undefined) checkArchitectureName(file.arch.name, o.arch, o.model);
  const { arch } = file;
  if (o.format === 'onnx') {
    await writeFileAtomic(out, file.bytes);
    process.stdout.write(`wrote ${out} (${(file.bytes.length / 1e6).toFixed(1)} MB): ${arch.name}, ${arch.numClasses} classes, ${file.precision}; ` +
      `the ONNX file ${o.model} as it is\n`);
    return;
  }
  if (file.precision !== 'float32') {
    throw new FcnError(`${o.model}: an int8 file (written by fcn quantize) has no float32 weights to export; export the checkpoint or float32 .onnx it was made from`);
  }
  // refused there, before any weight is read, naming the networks that export to torchvision
  if (!isTorchvisionNetwork(arch.name)) return writeTorchvision({ arch, weights: new Map() }, out, '');
  const options = (arch as { options?: Record<string, unknown> }).options ?? {};
  const hadAux = options['aux'] === true;
  const noAux = torchvisionNetwork(arch.name, { ...options, aux: false });
  await writeTorchvision({ arch: noAux, weights: floatExportWeights(file, o.model) }, out,
    hadAux ? '; without the auxiliary head, which an ONNX file does not hold: build the network with aux_loss=False' : '');
}

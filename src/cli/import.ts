// fcn import FILE --out FILE.safetensors [--arch NAME] — any weight file we read (the book's PyTorch
// FCN .pth, torchvision's segmentation state_dicts, the same tensors as .safetensors, or our
// checkpoint) → our checkpoint with its metadata.
import { Command } from 'commander';
import { importCheckpoint, LAYOUT_DESCRIPTIONS } from '../weights/index.js';
import { modelPath } from '../infer/named.js';
import { ARCH_HELP, parseArch, parseVariant, VARIANT_HELP, foldVariant } from './options.js';

const FORMATS = { 'fcn-checkpoint': 'fcn checkpoint', safetensors: 'safetensors', pth: 'PyTorch state_dict' } as const;

export function command(): Command {
  return new Command('import')
    .description("convert the book's PyTorch FCN or torchvision's segmentation networks (.pth state_dict, or the same tensors as .safetensors) into an fcn checkpoint")
    .argument('<file>', 'a .pth (torch.save zip or legacy format) or .safetensors file, or a downloaded network\'s name')
    .requiredOption('--out <file>', 'the checkpoint to write (.safetensors with architecture, classes, colours, normalisation)')
    .option('--arch <name>', ARCH_HELP, parseArch)
    .option('--variant <name>', VARIANT_HELP, parseVariant)
    .hook('preAction', foldVariant)
    .action(async (file: string, o: { out: string; arch?: string }) => {
      const { checkpoint: c, source, tensors } = await importCheckpoint(modelPath(file), o.out, { arch: o.arch });
      const shown = c.classes.length > 6 ? [...c.classes.slice(0, 5), '…', c.classes[c.classes.length - 1]] : c.classes;
      process.stdout.write(
        `read ${file}: ${FORMATS[source.format]}, ${LAYOUT_DESCRIPTIONS[source.layout]}\n` +
          `architecture: ${c.arch.name}\n` +
          `classes: ${c.arch.numClasses} (${shown.join(', ')})\n` +
          `tensors: ${tensors}\n` +
          `wrote ${o.out}\n`,
      );
    });
}

// Parsers for flag values shared by several commands; a bad value is a usage error (exit 2).
import { availableParallelism } from 'node:os';
import { UsageError } from '../util/errors.js';

/**
 * `--threads N`: at least 1 and at most the cores this process may use (os.availableParallelism()).
 * More threads than cores only oversubscribe them: ONNX Runtime's spinning workers then take
 * 100x longer (a 1 s prediction took 104 s with --threads 1000 on 2 cores).
 */
export function parseThreads(value: string): number {
  const n = Number(value);
  const cores = availableParallelism();
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--threads expects an integer >= 1, got '${value}'`);
  if (n > cores) throw new UsageError(`--threads ${n} is more than the ${cores} core${cores === 1 ? '' : 's'} of this machine (expected 1..${cores})`);
  return n;
}

/** `--max-pixels N`: the largest image or mask decoded, in pixels (default 100 million). */
export function parseMaxPixels(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`--max-pixels expects a positive integer number of pixels (default 100000000), got '${value}'`);
  return n;
}

export function parseIntFlag(name: string, min = 0) {
  // every command's --threads goes through the one check against the machine's cores
  if (name === '--threads') return parseThreads;
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`${name} expects an integer >= ${min}, got '${value}'`);
    return n;
  };
}

export function parseFloatFlag(name: string, min = -Infinity) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min) throw new UsageError(`${name} expects a number >= ${min}, got '${value}'`);
    return n;
  };
}

/** Parses 'HxW' (e.g. 320x480) into [height, width]. */
export function parseSize(name: string) {
  return (value: string): [number, number] => {
    const m = /^(\d+)x(\d+)$/.exec(value);
    if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) throw new UsageError(`${name} expects HxW (e.g. 320x480), got '${value}'`);
    return [Number(m[1]), Number(m[2])];
  };
}

/** --arch NAME: the book's fcn32s/fcn16s/fcn8s or one of torchvision's networks. */
export const ARCH_NAMES: readonly string[] = ['fcn32s', 'fcn16s', 'fcn8s', 'fcn_resnet50', 'fcn_resnet101', 'deeplabv3_resnet50', 'deeplabv3_resnet101',
  'lraspp_mobilenet_v3_large', 'deeplabv3_mobilenet_v3_large'];

export function parseArch(value: string): string {
  if (!ARCH_NAMES.includes(value)) throw new UsageError(`--arch expects one of ${ARCH_NAMES.join(', ')}, got '${value}'`);
  return value;
}

export const ARCH_HELP = 'the network the model file must hold (recognised from the file otherwise): ' + ARCH_NAMES.join(', ');

const VARIANTS: readonly string[] = ['fcn32s', 'fcn16s', 'fcn8s'];

/** --variant NAME, the book's fcn32s/fcn16s/fcn8s as fcn train names them: an alias of --arch (foldVariant). */
export function parseVariant(value: string): string {
  if (!VARIANTS.includes(value)) throw new UsageError(`--variant expects one of ${VARIANTS.join(', ')}, got '${value}'`);
  return value;
}

export const VARIANT_HELP = `the book's network (${VARIANTS.join(', ')}): the same as --arch`;

/** A command's preAction hook: --variant given becomes --arch (a different --arch beside it is a usage error). */
export function foldVariant(cmd: { opts(): Record<string, unknown>; setOptionValue(key: string, value: unknown): unknown }): void {
  const { arch, variant } = cmd.opts();
  if (variant === undefined) return;
  if (arch !== undefined && arch !== variant) throw new UsageError(`--variant ${String(variant)} and --arch ${String(arch)} name different networks; give one`);
  cmd.setOptionValue('arch', variant);
}
export const MODEL_HELP = "checkpoint (.safetensors), the book's or torchvision's PyTorch state_dict (.pth), an .onnx file fcn export or fcn quantize wrote, or a downloaded network's name (fcn_resnet50, ...)";

// fcn quantize --model FILE --data DIR [--split train] [--calib 100] --out FILE.onnx
import { Command, Option } from 'commander';
import { loadCheckpoint, type Checkpoint } from '../weights/checkpoint.js';
import { compileExport } from '../graph/inference.js';
import { modelPath } from '../infer/named.js';
import { SegmentationModel } from '../infer/model.js';
import { decodeFcnOnnx, floatExportWeights, isOnnxPath, readFcnOnnx, type FcnOnnxFile } from '../infer/onnx-file.js';
import { quantizeCheckpoint, compareModels, CALIBRATION_METHODS, DEFAULT_CALIBRATION, type CalibrationMethod } from '../quantize/index.js';
import { SplitNotFoundError } from '../data/layouts.js';
import { metricsReport } from '../eval/confusion.js';
import { Progress } from '../util/progress.js';
import { checkOutputFile, writeFileAtomic } from '../util/fs.js';
import { FcnError, UsageError } from '../util/errors.js';
import { addDataOptions, openDataFromFlags, modelLabels, type DataFlags } from './data.js';
import { ARCH_HELP, parseArch, parseVariant, VARIANT_HELP, foldVariant, parseFloatFlag, parseIntFlag, parseMaxPixels } from './options.js';

interface QuantizeFlags extends DataFlags {
  model: string; arch?: string; data: string; split: string; calib: number; out: string;
  method: CalibrationMethod; percentile: number; valLimit?: number; threads?: number; maxPixels?: number;
}

const mb = (n: number): string => (n / 1e6).toFixed(1);

export function command(): Command {
  const cmd = new Command('quantize')
    .description('post-training int8 quantisation: calibrate activation ranges on full images of a split, int8 weights per output channel; ' +
      'writes an ONNX file (QDQ form) that predict, eval, show and serve load with --model, and compares it with float32 on the val split')
    .requiredOption('--model <file|name>', "the trained network: checkpoint (.safetensors), the book's or torchvision's .pth, a float32 .onnx that fcn export wrote, or a downloaded network's name")
    .option('--arch <name>', ARCH_HELP, parseArch)
    .option('--variant <name>', VARIANT_HELP, parseVariant)
    .hook('preAction', foldVariant)
    .requiredOption('--data <dir>', 'the dataset whose images calibrate the ranges (any layout)')
    .option('--split <name>', 'the split calibrated on', 'train')
    .option('--calib <n>', 'calibration images, spread evenly over the split', parseIntFlag('--calib', 1), 100)
    .requiredOption('--out <file>', 'the int8 .onnx file to write')
    .addOption(new Option('--method <name>', 'activation ranges: percentile (clips the rarest outliers) or minmax').choices([...CALIBRATION_METHODS]).default(DEFAULT_CALIBRATION.method))
    .option('--percentile <p>', 'the percentile kept by --method percentile', parseFloatFlag('--percentile', 50), DEFAULT_CALIBRATION.percentile)
    .option('--val-limit <n>', 'compare float32 and int8 on the first n val images only', parseIntFlag('--val-limit', 1))
    .option('--max-pixels <n>', 'largest image accepted, in pixels (default 100000000; env FCN_MAX_PIXELS)', parseMaxPixels)
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)', parseIntFlag('--threads', 1));
  return addDataOptions(cmd, false).action(async (o: QuantizeFlags) => {
    if (o.percentile > 100) throw new UsageError(`--percentile expects a number between 50 and 100, got ${o.percentile}`);
    checkOutputFile(o.out);
    // a float32 file fcn export wrote: its parameters read back from the graph (the reference model is the file itself)
    let floatFile: FcnOnnxFile | undefined;
    let ckpt: Checkpoint;
    if (isOnnxPath(o.model)) {
      floatFile = await readFcnOnnx(o.model);
      if (floatFile.precision === 'int8') throw new FcnError(`${o.model}: already int8 (written by fcn quantize); quantise the checkpoint or float32 export it was made from`);
      if (o.arch !== undefined) throw new UsageError(`--arch: ${o.model} names its architecture (${floatFile.arch.name}); leave --arch out`);
      ckpt = { arch: floatFile.arch, weights: floatExportWeights(floatFile, o.model), ...floatFile.card, metadata: {}, extra: new Map() };
    } else {
      ckpt = await loadCheckpoint(modelPath(o.model), { arch: o.arch });
    }
    const labels = modelLabels(ckpt, o.model);
    const ds = await openDataFromFlags(o.data, o.split, o, { maxPixels: o.maxPixels, defaultLabels: labels });
    if (ds.ids.length === 0) throw new FcnError(`${o.data}: the '${o.split}' split has no images to calibrate on (choose another with --split)`);
    const n = Math.min(o.calib, ds.ids.length);
    const bar = new Progress({ total: n, label: `calibrate ${o.split}`, unit: 'img' });
    const settings = { method: o.method, percentile: o.percentile };
    const result = await quantizeCheckpoint(ckpt, ds, { calib: n, settings, threads: o.threads, onProgress: (done) => bar.update(done) });
    bar.finish();
    await writeFileAtomic(o.out, result.bytes);
    const floatBytes = floatFile ? floatFile.bytes.length : compileExport(ckpt.arch, ckpt.weights, ckpt).length;
    const how = settings.method === 'percentile' ? `percentile ${settings.percentile}` : 'min/max';
    process.stdout.write(`wrote ${o.out} (${mb(result.bytes.length)} MB, ${(100 * result.bytes.length / floatBytes).toFixed(0)}% of the float32 export's ${mb(floatBytes)} MB): ` +
      `${ckpt.arch.name}, ${result.plan.intConvs.size} int8 convolutions, ${how} ranges from ${result.calibration.images} ${o.split} images\n`);

    // float32 against int8 on the val split, when there is one
    let val;
    try {
      val = await openDataFromFlags(o.data, 'val', o, { maxPixels: o.maxPixels, defaultLabels: labels });
    } catch (err) {
      if (err instanceof SplitNotFoundError) {
        process.stdout.write('no val split: float32 and int8 not compared\n');
        return;
      }
      // the int8 file is written whole by now; a val split that cannot be read (an empty id list)
      // only leaves out the comparison
      if (!(err instanceof FcnError)) throw err;
      process.stdout.write(`val split not read (${err.message}): float32 and int8 not compared\n`);
      return;
    }
    const ids = o.valLimit !== undefined ? val.ids.slice(0, o.valLimit) : val.ids;
    if (ids.length === 0) return;
    // scores need the val masks' class ids to be the model's; calibration itself reads only images
    const valClasses = val.labels.classes.length;
    if (valClasses !== ckpt.arch.numClasses) {
      process.stdout.write(`the val split has ${valClasses} classes (from ${val.labels.source}), the model ${ckpt.arch.numClasses}: float32 and int8 not compared\n`);
      return;
    }
    const reference = floatFile ? await SegmentationModel.fromOnnx(floatFile, { threads: o.threads }) : await SegmentationModel.fromCheckpoint(ckpt, { threads: o.threads });
    const candidate = await SegmentationModel.fromOnnx(decodeFcnOnnx(result.bytes, o.out), { threads: o.threads });
    try {
      const vbar = new Progress({ total: ids.length, label: 'compare val', unit: 'img' });
      const c = await compareModels(reference, candidate, val, { ids, onProgress: (done) => vbar.update(done) });
      vbar.finish();
      const a = metricsReport(c.reference, ckpt.classes);
      const b = metricsReport(c.candidate, ckpt.classes);
      const row = (name: string, x: number, y: number): string => `${name.padEnd(12)} ${x.toFixed(4).padStart(8)} ${y.toFixed(4).padStart(8)} ${(y - x >= 0 ? '+' : '') + (y - x).toFixed(4)}\n`;
      process.stdout.write(`val (${c.images} images)  float32     int8    delta\n` +
        row('pixel acc', a.pixelAccuracy, b.pixelAccuracy) + row('mean acc', a.meanAccuracy, b.meanAccuracy) +
        row('mIoU', a.meanIoU, b.meanIoU) + row('fwIoU', a.frequencyWeightedIoU, b.frequencyWeightedIoU) +
        `masks agree on ${(100 * c.agreement).toFixed(2)}% of val pixels\n`);
    } finally {
      await reference.dispose();
      await candidate.dispose();
    }
  });
}

// The dataset flags shared by train, eval and show (--layout, --classes, --val-fraction), and the
// flag names put into the data layer's messages about splits.
import { Command, Option } from 'commander';
import { LAYOUTS, type LayoutName } from '../data/dataset.js';
import { labelsFromNames, type LabelSpace } from '../data/labels.js';
import { openDataset, SplitNotFoundError, type OpenOptions } from '../data/layouts.js';
import type { Dataset } from '../data/dataset.js';
import { FcnError, UsageError } from '../util/errors.js';
import { hasControl, printable } from '../util/text.js';

export interface DataFlags {
  layout?: LayoutName;
  classes?: string[];
  valFraction?: number;
}

export function addDataOptions(cmd: Command, withFraction = true): Command {
  cmd
    .addOption(new Option('--layout <name>', 'read --data as this layout instead of detecting it').choices([...LAYOUTS]))
    .option('--classes <a,b,c>', "class names, index 0 first (list the background yourself if the masks use it); colours from the VOC palette; replaces the dataset's labelmap.txt/classes.json", parseClasses);
  if (withFraction) {
    cmd.option('--val-fraction <f>', "hold out this fraction of the training list (CVAT's default.txt) as the val split, the same ids on every run", parseFraction);
  }
  return cmd;
}

export function parseClasses(value: string): string[] {
  const names = value.split(',').map((s) => s.trim());
  if (names.length === 0 || names.some((n) => n.length === 0)) throw new UsageError(`--classes expects names separated by commas (e.g. background,road,car), got '${value}'`);
  const control = names.find(hasControl);
  if (control !== undefined) throw new UsageError(`--classes: '${printable(control)}' holds control characters; expected plain names`);
  const twice = names.findIndex((n, i) => names.indexOf(n) !== i);
  if (twice >= 0) throw new UsageError(`--classes lists '${names[twice]}' twice (at ${names.indexOf(names[twice]!)} and ${twice}); class names must be unique`);
  return names;
}

function parseFraction(value: string): number {
  const f = Number(value);
  if (!(f > 0 && f < 1)) throw new UsageError(`--val-fraction expects a number between 0 and 1 (e.g. 0.2), got '${value}'`);
  return f;
}

export function labelsFromFlags(flags: DataFlags): LabelSpace | undefined {
  return flags.classes ? labelsFromNames(flags.classes, '--classes') : undefined;
}

/** openDataset with the flags' options; a missing split's message names the flags that choose one. */
export async function openDataFromFlags(dir: string, split: string, flags: DataFlags, extra: OpenOptions = {}, splitFlag = '--split'): Promise<Dataset> {
  try {
    return await openDataset(dir, split, { layout: flags.layout, labels: labelsFromFlags(flags), valFraction: flags.valFraction, ...extra });
  } catch (err) {
    if (err instanceof SplitNotFoundError) {
      throw new FcnError(`${err.message} (choose one with ${splitFlag}${err.available.length > 0 && (split === 'train' || split === 'val') ? ', or split one with --val-fraction F' : ''})`);
    }
    throw err;
  }
}

/** A model's classes and colours as a label space (for a dataset without a class file). */
export function modelLabels(meta: { classes: readonly string[]; colors: readonly (readonly number[])[] }, source: string): LabelSpace {
  return { classes: [...meta.classes], colors: meta.colors.map((c) => [c[0]!, c[1]!, c[2]!] as const), source, reduceZeroLabel: false };
}

/** A model scores a dataset only when both have the same number of classes. */
export function checkDatasetFitsModel(ds: Dataset, numClasses: number, model: string): void {
  const n = ds.labels.classes.length;
  if (n !== numClasses) {
    throw new FcnError(`${model}: the model has ${numClasses} classes but the dataset ${ds.root} has ${n} (from ${ds.labels.source}); score it with a model trained on these classes`);
  }
}

// fcn train --data DIR [--out DIR] [--epochs 5] [--batch-size 32] [--crop 320x480] [--lr 0.001]
//           [--wd 1e-3] [--momentum 0] [--freeze-backbone] [--backbone FILE] [--init FILE]
//           [--resume] [--seed S] [--threads N]  (+ --variant, --eval-limit, --small, --flip, --scratch, --grid, --lr-schedule)
// The flags are made from the library's table of options (train/options.ts): a flag per option,
// named by its key in kebab case unless FLAG_NAMES says otherwise; its help is the option's doc.
// The CLI parses only the syntax (a number, HxW); ranges and choices are checked once, by the library,
// whose messages name the flag because train() is given flagOf as its optionName.
import { Command, Option } from 'commander';
import { relative } from 'node:path';
import { train } from '../train/loop.js';
import { TRAIN_OPTIONS, type OptionSpec, type TrainOptionKey, type TrainOptions } from '../train/options.js';
import { FcnError, UsageError } from '../util/errors.js';
import { SplitNotFoundError } from '../data/layouts.js';
import { parseSize } from './options.js';
import { printableLines } from '../util/text.js';

/** Flags whose name is not the option's key in kebab case (DESIGN.md's CLI contract). */
const FLAG_NAMES: Partial<Record<TrainOptionKey, string>> = { weightDecay: 'wd', gridImages: 'grid' };

/** The flag of an option: `--batch-size` for batchSize. */
export function flagOf(key: TrainOptionKey): string {
  return `--${FLAG_NAMES[key] ?? key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** A path as short as it can be said from the current folder. */
export function shortPath(p: string): string {
  const rel = relative(process.cwd(), p);
  return rel && !rel.startsWith('..') ? rel : p;
}

function parseNumber(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || Number.isNaN(n)) throw new UsageError(`${flag} expects a number, got '${value}'`);
    return n;
  };
}

/** The commander option for a table entry: placeholder, parser, and the default shown in the help. */
function flagOption(key: TrainOptionKey, spec: OptionSpec<unknown>): Option {
  const flag = flagOf(key);
  const kind = spec.kind;
  const placeholder = {
    int: '<n>', number: '<x>', size: '<HxW>', choice: '<name>', boolean: '', path: key === 'data' || key === 'out' ? '<dir>' : '<file>',
    names: '<a,b,c>', split: '<name>', range: '<lo,hi>', fraction: '<f>',
  }[kind.type];
  let help = spec.doc;
  if (kind.type === 'choice') help += ` (${kind.values.join('|')})`;
  const d = spec.default;
  if (typeof d !== 'function' && d !== undefined && d !== null && d !== false && d !== '') help += ` (default: ${Array.isArray(d) ? d.join('x') : String(d)})`;
  const opt = new Option(placeholder ? `${flag} ${placeholder}` : flag, help);
  if (kind.type === 'int' || kind.type === 'number') opt.argParser(parseNumber(flag));
  if (kind.type === 'size') opt.argParser(parseSize(flag));
  if (kind.type === 'fraction') opt.argParser(parseNumber(flag));
  if (kind.type === 'names') opt.argParser((v: string) => v.split(',').map((n) => n.trim()));
  if (kind.type === 'range') opt.argParser((v: string) => v.split(',').map((n) => (n.trim() === '' ? NaN : Number(n))));
  if (kind.type === 'path' && kind.required) opt.makeOptionMandatory();
  return opt;
}

export function command(): Command {
  const cmd = new Command('train').description(
    'train the FCN as the book does (SGD over random crops of the train split, val scored on full images each epoch); ' +
    'writes OUT/last.safetensors, OUT/best.safetensors (best val mIoU), OUT/metrics.jsonl, OUT/curves.png and OUT/grid.png',
  );
  const attributes = new Map<TrainOptionKey, string>();
  for (const [key, spec] of Object.entries(TRAIN_OPTIONS) as [TrainOptionKey, OptionSpec<unknown>][]) {
    const opt = flagOption(key, spec);
    attributes.set(key, opt.attributeName());
    cmd.addOption(opt);
  }
  return cmd.action(async (flags: Record<string, unknown>) => {
    // lines carry names read from files (classes, paths): printed with control characters escaped
    const out = (line: string) => process.stdout.write(printableLines(line) + '\n');
    const given: Record<string, unknown> = {};
    for (const [key, attr] of attributes) if (flags[attr] !== undefined) given[key] = flags[attr];
    const res = await train({ ...(given as TrainOptions), progress: true, log: out, optionName: flagOf }).catch((err: unknown) => {
      if (err instanceof SplitNotFoundError) {
        throw new FcnError(`${err.message} (choose lists with --split/--val-split${err.split === 'train' || err.split === 'val' ? ', or hold out a fraction with --val-fraction F' : ''})`);
      }
      throw err;
    });
    const f = res.files;
    out(`checkpoints: ${shortPath(f.last)} (epoch ${res.history.length}), ${shortPath(f.best)} (epoch ${res.best?.epoch ?? '-'}, val mIoU ${res.best?.testMeanIoU.toFixed(3) ?? '-'})`);
    out(`metrics: ${shortPath(f.metrics)}; curves: ${shortPath(f.curves)}${f.grid ? `; predictions: ${shortPath(f.grid)}` : ''}`);
  });
}

// The `fcn` command line: registers one sub-command per file in this folder and turns a thrown
// FcnError into one line on stderr with its exit code (2 for usage errors).
import { Command, CommanderError } from 'commander';
import { FcnError, errorMessage } from '../util/errors.js';
import { printable } from '../util/text.js';

/** Each command module exports `command(): Command`. Listed here in the order `--help` shows. */
const COMMANDS = ['synth', 'train', 'eval', 'predict', 'score', 'show', 'upsample', 'import', 'export', 'quantize', 'serve', 'worker', 'download', 'demo'];
/** Commands that run networks and so take --device (an ONNX Runtime execution provider). */
const DEVICE_COMMANDS = ['train', 'predict', 'eval', 'show', 'serve', 'worker', 'quantize'];

/** Loads the named command only (fast start-up: `fcn score` never loads ONNX Runtime); all of them for `fcn --help`. */
async function loadCommands(program: Command, argv: string[]): Promise<void> {
  const asked = argv[2];
  const names = asked !== undefined && COMMANDS.includes(asked) ? [asked] : COMMANDS;
  for (const name of names) {
    let mod: { command?: () => Command };
    try {
      mod = (await import(`./${name}.js`)) as { command?: () => Command };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String(err).includes(`/cli/${name}.js`)) continue;
      throw err;
    }
    if (mod.command) program.addCommand(mod.command());
  }
}

export async function main(argv: string[]): Promise<number> {
  const program = new Command('fcn')
    .description('Fully Convolutional Networks for semantic segmentation (PASCAL VOC), on ONNX Runtime')
    .showHelpAfterError(false)
    .exitOverride();
  await loadCommands(program, argv);
  for (const cmd of program.commands) cmd.exitOverride();
  for (const cmd of program.commands.filter((c) => DEVICE_COMMANDS.includes(c.name()))) {
    cmd.option('--device <device>', 'where ONNX Runtime runs the network: cpu, cuda[:N], dml[:N], coreml or webgpu (default cpu)');
    cmd.hook('preAction', async (c) => {
      const device = c.opts<{ device?: string }>().device;
      if (device === undefined) return;
      // loaded only here: commands without --device (score, synth) never load ONNX Runtime
      const engine = await import('../engine/session.js');
      engine.setDefaultDevice(engine.parseDevice(device));
    });
  }
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version exit 0; everything else commander rejects is a usage error
      if (err.exitCode === 0 || err.code === 'commander.helpDisplayed' || err.code === 'commander.help') return 0;
      return 2;
    }
    if (err instanceof FcnError) {
      // messages quote file names and file contents: escaped, so they stay one line and harmless
      process.stderr.write(`fcn: ${printable(err.message)}\n`);
      return err.exitCode;
    }
    process.stderr.write(`fcn: internal error: ${errorMessage(err)}\n${err instanceof Error ? err.stack ?? '' : ''}\n`);
    return 1;
  }
}

const code = await main(process.argv);
process.exitCode = code;

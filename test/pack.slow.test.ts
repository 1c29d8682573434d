// What a user gets from `npm install fcn`: the packed tarball installed in an empty folder (its
// dependencies from the npm registry or npm's cache) gives a working `fcn` CLI and library. The
// package is packed from the dist/ that `npm test` has just compiled (--ignore-scripts skips a second build).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fcnResNet18, initParameters, seededRandom } from '../src/model/index.js';
import { defaultCard } from '../src/model/card.js';
import { saveCheckpoint } from '../src/weights/checkpoint.js';
import { writeImage } from '../src/data/image.js';

const root = new URL('../../', import.meta.url).pathname;

/** DESIGN.md's "What a program sees", with the options a tiny run needs. */
const SNIPPET = `import { readFile } from 'node:fs/promises';
import { loadModel, train, evaluate, bilinearKernel, VOC_CLASSES, VOC_COLORMAP, openDataset, setDefaultDevice, parseDevice, type Device } from 'fcn';

const cpu: Device = parseDevice('cpu');
setDefaultDevice(cpu);

const model = await loadModel('model.safetensors');
const { mask, width, height, classes } = await model.segment('photo.png');
console.log(\`segment \${width}x\${height} \${mask.length} mask, classes \${classes.length}\`);
const fromBytes = await model.segment(await readFile('photo.png'));
console.log(\`bytes \${fromBytes.width}x\${fromBytes.height}\`);
await model.dispose();

const fresh = await loadModel({ numClasses: 3 });
const f = await fresh.segment(new Uint8Array(await readFile('photo.png')));
console.log(\`fresh \${fresh.numClasses} classes \${f.width}x\${f.height}\`);
await fresh.dispose();

const kernel: Float32Array = bilinearKernel(2, 2, 4);
console.log(\`constants \${VOC_CLASSES.length} \${VOC_COLORMAP.length} \${VOC_COLORMAP[1]!.join(',')} kernel \${kernel.length}\`);

const result = await train({
  data: 'synth', out: 'run', epochs: 1, crop: [64, 96], batchSize: 2, threads: 1, scratch: true, gridImages: 0,
  onEpoch: (m) => console.log(\`epoch \${m.epoch} of \${m.epochs} loss \${m.loss.toFixed(3)}\`),
});
const trained = await loadModel(result.files.last);
const cm = await evaluate(trained, await openDataset('synth', 'val'));
console.log(\`evaluate \${cm.numClasses}x\${cm.numClasses} pixels \${cm.total}\`);
await trained.dispose();
`;

test('npm pack, install in an empty folder: fcn --help, fcn predict, import { loadModel } and fcn/internals work', { timeout: 600_000 }, async () => {
  const work = mkdtempSync(join(tmpdir(), 'fcn-pack-'));
  try {
    const packOut = execFileSync('npm', ['pack', '--silent', '--ignore-scripts', '--pack-destination', work], { cwd: root, encoding: 'utf8' });
    const tarball = join(work, packOut.trim().split('\n').pop()!);
    assert.ok(existsSync(tarball), `npm pack wrote ${tarball}`);
    const listing = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' });
    assert.match(listing, /package\/dist\/src\/cli\/main\.js/);
    assert.match(listing, /package\/src\/web\/static\/index\.html/);
    assert.match(listing, /package\/LICENSE/, 'the licence package.json names travels with the code');
    assert.doesNotMatch(listing, /package\/dist\/test\//, 'tests stay out of the package');
    // every picture the README shows is in the package (npm's page renders them from it)
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    for (const [, src] of readme.matchAll(/!\[[^\]]*\]\(([^)\s]+)\)/g)) {
      if (!/^https?:/.test(src!)) assert.ok(listing.includes(`package/${src}`), `README picture ${src} is in the package`);
    }

    const app = join(work, 'app');
    execFileSync('mkdir', ['-p', app]);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    // as on any machine without access to onnxruntime's GPU feed: its CPU binary ships in the package
    writeFileSync(join(app, '.npmrc'), 'onnxruntime-node-install=skip\n');
    execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tarball], { cwd: app, stdio: 'pipe', timeout: 480_000 });
    assert.ok(!existsSync(join(app, 'node_modules', 'onnxruntime-web')), 'onnxruntime-web is an optional peer: not installed by default');

    const fcn = join(app, 'node_modules', '.bin', 'fcn');
    const help = execFileSync(fcn, ['--help'], { cwd: app, encoding: 'utf8' });
    assert.match(help, /predict/);

    const arch = fcnResNet18({ numClasses: 3 });
    await saveCheckpoint(join(app, 'model.safetensors'), { arch, weights: initParameters(arch, seededRandom(3)), ...defaultCard(3), metadata: {}, extra: new Map() });
    const pixels = new Uint8Array(40 * 56 * 3).map((_, i) => (i * 37) % 251);
    await writeImage(join(app, 'photo.png'), { width: 56, height: 40, data: pixels });
    execFileSync(fcn, ['predict', '--model', 'model.safetensors', '--out', 'pred', 'photo.png'], { cwd: app, stdio: 'pipe' });
    assert.deepEqual(readdirSync(join(app, 'pred')), ['photo.png']);

    const script = "import { loadModel } from 'fcn'; import { compileInference } from 'fcn/internals'; const m = await loadModel('model.safetensors'); const s = await m.segment('photo.png'); await m.dispose(); console.log(s.width + 'x' + s.height + ' ' + s.mask.length + ' ' + typeof compileInference);";
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: app, encoding: 'utf8' });
    assert.equal(out.trim(), '56x40 2240 function');

    // DESIGN.md's library snippet, as a TypeScript user writes it: type-checked against the shipped
    // .d.ts (strict, declaration files checked too), then run on a tiny synthetic set
    execFileSync(fcn, ['synth', '--out', 'synth', '--size', '96x96', '--train', '4', '--val', '2'], { cwd: app, stdio: 'pipe' });
    writeFileSync(join(app, 'snippet.ts'), SNIPPET);
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, skipLibCheck: false, outDir: 'out', types: ['node'], typeRoots: [join(root, 'node_modules', '@types')] },
      files: ['snippet.ts'],
    }));
    const tsc = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: app, encoding: 'utf8' });
    assert.equal(tsc.status, 0, `the snippet type-checks against the package's .d.ts:\n${tsc.stdout}${tsc.stderr}`);
    const run = execFileSync(process.execPath, ['out/snippet.js'], { cwd: app, encoding: 'utf8', timeout: 120_000 });
    assert.match(run, /^segment 56x40 2240 mask, classes \d+$/m);
    assert.match(run, /^bytes 56x40$/m);
    assert.match(run, /^fresh 3 classes 56x40$/m);
    assert.match(run, /^constants 21 21 128,0,0 kernel 64$/m);
    assert.match(run, /^epoch 1 of 1 loss \d/m);
    assert.match(run, /^evaluate 6x6 pixels \d+$/m);
    assert.ok(existsSync(join(app, 'run', 'last.safetensors')));

    // CommonJS callers: require() of the ES module works where Node has require(esm) (20.19+, 22.12+)
    if ((process.features as { require_module?: boolean }).require_module) {
      const cjs = execFileSync(process.execPath, ['-e', "const f = require('fcn'); console.log(typeof f.loadModel, typeof require('fcn/internals').compileInference)"], { cwd: app, encoding: 'utf8' });
      assert.equal(cjs.trim(), 'function function');
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

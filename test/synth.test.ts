// The synthetic VOC dataset and `fcn synth`: same bytes for a seed, the VOC layout, masks that use
// only the shape classes, background and void (on every boundary, as VOC), objects large against a
// 32-px stride, class decided by shape and not by colour, varied sizes around the base, and the
// CLI's refusals (non-empty --out, bad --size) with one-line errors and nothing left behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateSynthVoc, SYNTH_CLASSES, SYNTH_DEFAULTS } from '../src/data/synth.js';
import { openDataset } from '../src/data/layouts.js';
import { openVoc, readExample, readVocExample, type VocExample } from '../src/data/dataset.js';
import { prepareSplit } from '../src/data/batches.js';
import { FcnError } from '../src/util/errors.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'fcn-synth-'));
process.on('exit', () => fs.rmSync(tmpRoot, { recursive: true, force: true }));

function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) walk(r);
      else out.push(r);
    }
  };
  walk('');
  return out.sort();
}

function fcn(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/fcn.js', ...args], { cwd: repoRoot, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const BASE: [number, number] = [96, 128];
const SHAPE_IDS = SYNTH_CLASSES.map((c) => c.classId);

test('same seed, same bytes; the VOC layout; another seed differs; val count leaves train alone', async () => {
  const a = path.join(tmpRoot, 'a');
  const b = path.join(tmpRoot, 'nested', 'b'); // the parent is created
  const ra = await generateSynthVoc(a, { train: 12, val: 4, size: BASE, seed: 3 });
  const rb = await generateSynthVoc(b, { train: 12, val: 4, size: BASE, seed: 3 });
  assert.deepEqual({ ...ra, root: '' }, { ...rb, root: '' });
  assert.equal(ra.root, path.resolve(a));
  assert.deepEqual([ra.train, ra.val], [12, 4]);
  const files = listFiles(a);
  assert.deepEqual(listFiles(b), files);
  const ids = [...Array.from({ length: 12 }, (_, i) => `train_${String(i).padStart(6, '0')}`), ...Array.from({ length: 4 }, (_, i) => `val_${String(i).padStart(6, '0')}`)];
  assert.deepEqual(files, [
    path.join('ImageSets', 'Segmentation', 'train.txt'),
    path.join('ImageSets', 'Segmentation', 'trainval.txt'),
    path.join('ImageSets', 'Segmentation', 'val.txt'),
    ...ids.map((id) => path.join('JPEGImages', `${id}.jpg`)),
    ...ids.map((id) => path.join('SegmentationClass', `${id}.png`)),
    'labelmap.txt',
  ]);
  // its own label space: background and the five shapes, read as CVAT's labelmap.txt
  const own = await openDataset(a, 'train');
  assert.equal(own.layout, 'cvat');
  assert.deepEqual(own.labels.classes, ['background', 'circle', 'square', 'triangle', 'cross', 'ring']);
  assert.deepEqual(own.labels.colors[1], [128, 0, 0]);
  assert.deepEqual((await readExample(own, ids[0]!)).mask.data, (await readExample(await openVoc(a, 'train'), ids[0]!)).mask.data);
  for (const f of files) assert.ok(fs.readFileSync(path.join(a, f)).equals(fs.readFileSync(path.join(b, f))), `${f} identical`);
  const list = (split: string) => fs.readFileSync(path.join(a, 'ImageSets', 'Segmentation', `${split}.txt`), 'utf8');
  assert.equal(list('train'), ids.slice(0, 12).map((id) => `${id}\n`).join(''));
  assert.equal(list('trainval'), ids.map((id) => `${id}\n`).join(''));
  assert.deepEqual((await openVoc(a, 'val')).ids, ids.slice(12));
  // JPEG images, palette PNG masks (PLTE chunk present)
  const jpg = fs.readFileSync(path.join(a, 'JPEGImages', `${ids[0]}.jpg`));
  assert.deepEqual([...jpg.subarray(0, 3)], [0xff, 0xd8, 0xff]);
  const png = fs.readFileSync(path.join(a, 'SegmentationClass', `${ids[0]}.png`));
  assert.equal(png[25], 3, 'PNG colour type 3 (palette)');
  assert.ok(png.includes(Buffer.from('PLTE')));
  // no temporary folders are left beside the output
  assert.deepEqual(fs.readdirSync(tmpRoot).filter((n) => n.startsWith('.')), []);

  const c = path.join(tmpRoot, 'c');
  await generateSynthVoc(c, { train: 12, val: 4, size: BASE, seed: 4 });
  const differing = ids.filter((id) => !fs.readFileSync(path.join(a, 'JPEGImages', `${id}.jpg`)).equals(fs.readFileSync(path.join(c, 'JPEGImages', `${id}.jpg`))));
  assert.equal(differing.length, ids.length);
  const d = path.join(tmpRoot, 'd');
  await generateSynthVoc(d, { train: 12, val: 1, size: BASE, seed: 3 });
  for (const id of ids.slice(0, 13)) {
    assert.ok(fs.readFileSync(path.join(a, 'SegmentationClass', `${id}.png`)).equals(fs.readFileSync(path.join(d, 'SegmentationClass', `${id}.png`))));
  }
});

/** 4-connected components of each non-void label other than background. */
function components(m: VocExample['mask']): { label: number; pixels: number[]; touchesBorder: boolean }[] {
  const { width: W, height: H, data } = m;
  const seen = new Uint8Array(W * H);
  const out: { label: number; pixels: number[]; touchesBorder: boolean }[] = [];
  for (let start = 0; start < W * H; start++) {
    const label = data[start]!;
    if (seen[start] || label === 0 || label === 255) continue;
    const pixels: number[] = [];
    const stack = [start];
    seen[start] = 1;
    let touchesBorder = false;
    while (stack.length) {
      const p = stack.pop()!;
      pixels.push(p);
      const x = p % W;
      const y = (p - x) / W;
      if (x === 0 || y === 0 || x === W - 1 || y === H - 1) touchesBorder = true;
      for (const q of [x > 0 ? p - 1 : -1, x < W - 1 ? p + 1 : -1, y > 0 ? p - W : -1, y < H - 1 ? p + W : -1]) {
        if (q >= 0 && !seen[q] && data[q] === label) {
          seen[q] = 1;
          stack.push(q);
        }
      }
    }
    out.push({ label, pixels, touchesBorder });
  }
  return out;
}

test('masks: shape classes, background and a void band on every boundary; large objects; class by shape, not colour', async () => {
  const root = path.join(tmpRoot, 'masks');
  const res = await generateSynthVoc(root, { train: 60, val: 0, size: BASE, seed: 1 });
  const ds = await openVoc(root, 'train');
  assert.equal(ds.ids.length, 60);
  const allClasses = new Set<number>();
  const centroidHits = new Map<number, [number, number]>(); // class -> [components checked, centroid where the shape says]
  const coloursByClass = new Map<number, number[][]>();
  const sizes = new Set<string>();
  for (const id of ds.ids) {
    const ex = await readVocExample(ds, id); // also checks image and mask sizes agree
    const { width: W, height: H, data } = ex.mask;
    sizes.add(`${H}x${W}`);
    assert.ok(H >= Math.round(0.6 * BASE[0]) && H <= Math.round(1.4 * BASE[0]) && W >= Math.round(0.6 * BASE[1]) && W <= Math.round(1.4 * BASE[1]), `${id} ${H}x${W} within ±40% of 96x128`);
    assert.ok(H < 320 && W < 480, 'with a 96x128 base every image is smaller than 320x480');
    assert.ok(H >= res.sizeRange.height[0] && H <= res.sizeRange.height[1] && W >= res.sizeRange.width[0] && W <= res.sizeRange.width[1]);
    const counts = new Map<number, number>();
    for (const v of data) counts.set(v, (counts.get(v) ?? 0) + 1);
    for (const k of counts.keys()) {
      assert.ok(k === 0 || k === 255 || SHAPE_IDS.includes(k), `${id}: class ${k} is not a shape class`);
      allClasses.add(k);
    }
    assert.ok(counts.get(0)! > 0, `${id} has background`);
    const voidShare = (counts.get(255) ?? 0) / data.length;
    assert.ok(voidShare > 0 && voidShare < 0.15, `${id}: void share ${voidShare}`);
    // every object pixel count is large against a 32x32 stride cell's worth (objects >= 48 px across)
    for (const k of SHAPE_IDS) if (counts.has(k)) assert.ok(counts.get(k)! >= 500, `${id}: class ${k} covers only ${counts.get(k)} px`);
    // VOC-like: two different non-void labels never touch; a void pixel separates them
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const l = data[y * W + x]!;
        if (l === 255) continue;
        const r = x + 1 < W ? data[y * W + x + 1]! : l;
        const d = y + 1 < H ? data[(y + 1) * W + x]! : l;
        assert.ok((r === l || r === 255) && (d === l || d === 255), `${id}: labels ${l}/${r}/${d} touch at x=${x} y=${y}`);
      }
    }
    for (const comp of components(ex.mask)) {
      if (comp.touchesBorder || comp.pixels.length < 300) continue;
      let sx = 0;
      let sy = 0;
      let sr = 0;
      let sg = 0;
      let sb = 0;
      for (const p of comp.pixels) {
        sx += p % W;
        sy += Math.floor(p / W);
        sr += ex.image.data[p * 3]!;
        sg += ex.image.data[p * 3 + 1]!;
        sb += ex.image.data[p * 3 + 2]!;
      }
      const n = comp.pixels.length;
      const centre = data[Math.round(sy / n) * W + Math.round(sx / n)]!;
      // rings have a hole at their centre; the other shapes cover theirs
      const expected = comp.label === 5 ? centre !== comp.label : centre === comp.label;
      const hit = centroidHits.get(comp.label) ?? [0, 0];
      centroidHits.set(comp.label, [hit[0] + 1, hit[1] + (expected ? 1 : 0)]);
      coloursByClass.set(comp.label, [...(coloursByClass.get(comp.label) ?? []), [sr / n, sg / n, sb / n]]);
    }
  }
  assert.deepEqual([...allClasses].sort((a, b) => a - b), [0, ...SHAPE_IDS, 255]);
  assert.ok(sizes.size > 30, `varied sizes: ${sizes.size} distinct of 60`);
  // the sides spread over most of the ±40% range
  assert.ok(res.sizeRange.height[0] <= 0.8 * BASE[0] && res.sizeRange.height[1] >= 1.2 * BASE[0], `heights ${res.sizeRange.height}`);
  assert.ok(res.sizeRange.width[0] <= 0.8 * BASE[1] && res.sizeRange.width[1] >= 1.2 * BASE[1], `widths ${res.sizeRange.width}`);
  assert.equal(SYNTH_CLASSES.find((c) => c.classId === 5)!.shape, 'ring');
  // (a component cut by an occluding object may break the rule, so not every one has to obey)
  let checkedAll = 0;
  let hitsAll = 0;
  for (const label of SHAPE_IDS) {
    const [checked, hits] = centroidHits.get(label) ?? [0, 0];
    assert.ok(checked >= 2 && hits / checked >= 0.75, `class ${label}: centroid where its shape puts it in ${hits}/${checked}`);
    checkedAll += checked;
    hitsAll += hits;
  }
  assert.ok(hitsAll / checkedAll >= 0.9, `centroids where the shape puts them: ${hitsAll}/${checkedAll}`);
  // colours are not a class cue: within every class, instance colours spread widely
  for (const [label, colours] of coloursByClass) {
    const spread = [0, 1, 2].map((c) => Math.max(...colours.map((v) => v[c]!)) - Math.min(...colours.map((v) => v[c]!)));
    assert.ok(Math.max(...spread) > 100, `class ${label} colours spread ${spread.map((s) => s.toFixed(0))}`);
  }
});

test('default size: some images are smaller than the book\'s 320x480 crop and some are not', async () => {
  assert.deepEqual({ train: SYNTH_DEFAULTS.train, val: SYNTH_DEFAULTS.val, seed: SYNTH_DEFAULTS.seed }, { train: 120, val: 30, seed: 0 });
  const root = path.join(tmpRoot, 'defaults');
  await generateSynthVoc(root, { train: 12, val: 0 });
  const split = await prepareSplit(await openVoc(root, 'train'), [320, 480], 'filter');
  assert.ok(split.dropped > 0 && split.ids.length > 0, `kept ${split.ids.length}, dropped ${split.dropped}`);
  assert.equal(split.ids.length + split.dropped, 12);
});

test('generateSynthVoc refuses bad options and a non-empty directory; an empty directory is used', async () => {
  const full = path.join(tmpRoot, 'full');
  fs.mkdirSync(full);
  fs.writeFileSync(path.join(full, 'keep.txt'), 'mine');
  await assert.rejects(generateSynthVoc(full, { train: 1, val: 1, size: BASE }), (e) => e instanceof FcnError && e.message.includes(full) && e.exitCode === 1);
  assert.deepEqual(fs.readdirSync(full), ['keep.txt']);
  await assert.rejects(generateSynthVoc(path.join(tmpRoot, 'tiny'), { size: [40, 40] }), (e) => e instanceof FcnError && e.exitCode === 2);
  await assert.rejects(generateSynthVoc(path.join(tmpRoot, 'none'), { train: 0, val: 0 }), (e) => e instanceof FcnError && e.exitCode === 2);
  await assert.rejects(generateSynthVoc(path.join(tmpRoot, 'frac'), { train: 1.5 }), (e) => e instanceof FcnError && e.exitCode === 2);
  assert.ok(!fs.existsSync(path.join(tmpRoot, 'tiny')) && !fs.existsSync(path.join(tmpRoot, 'none')) && !fs.existsSync(path.join(tmpRoot, 'frac')));
  const empty = path.join(tmpRoot, 'empty');
  fs.mkdirSync(empty);
  await generateSynthVoc(empty, { train: 2, val: 1, size: BASE });
  assert.equal(fs.readdirSync(path.join(empty, 'JPEGImages')).length, 3);
});

test('fcn synth: writes and reports; refuses a non-empty --out and a bad --size with one line, leaving nothing', () => {
  const out = path.join(tmpRoot, 'cli');
  const ok = fcn('synth', '--out', out, '--train', '3', '--val', '2', '--size', '96x128', '--seed', '5');
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /wrote 3 train \+ 2 val images to /);
  assert.ok(ok.stdout.includes(path.resolve(out)));
  assert.match(ok.stdout, /circle=1, square=2/);
  assert.match(ok.stdout, /labelmap\.txt/);
  assert.equal(fs.readdirSync(path.join(out, 'SegmentationClass')).length, 5);

  const before = listFiles(out);
  const again = fcn('synth', '--out', out, '--train', '3');
  assert.equal(again.code, 1);
  assert.equal(again.stderr.trim().split('\n').length, 1, again.stderr);
  assert.ok(again.stderr.startsWith('fcn: ') && again.stderr.includes(path.resolve(out)) && /not empty/.test(again.stderr), again.stderr);
  assert.deepEqual(listFiles(out), before);

  const file = path.join(tmpRoot, 'a-file');
  fs.writeFileSync(file, 'x');
  const onFile = fcn('synth', '--out', file);
  assert.equal(onFile.code, 1);
  assert.ok(onFile.stderr.includes(file) && onFile.stderr.trim().split('\n').length === 1, onFile.stderr);

  for (const size of ['12x', '50x500', '0x100', 'big']) {
    const dir = path.join(tmpRoot, `bad-size-${size}`);
    const r = fcn('synth', '--out', dir, '--size', size);
    assert.equal(r.code, 2, `--size ${size}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /--size/);
    assert.ok(r.stderr.includes(size), r.stderr);
    assert.ok(!fs.existsSync(dir), 'nothing written');
  }
  const badCount = fcn('synth', '--out', path.join(tmpRoot, 'bad-count'), '--train', '-3');
  assert.equal(badCount.code, 2);
  assert.match(badCount.stderr, /--train/);
  assert.deepEqual(fs.readdirSync(tmpRoot).filter((n) => n.startsWith('.') || n.startsWith('bad-')), []);
});

test("colours 'class' (the demo's task): every object in its class's hue, backgrounds muted; 'random' stays the default", async () => {
  const { renderSynthExample, SYNTH_HUES } = await import('../src/data/synth.js');
  const { Rng } = await import('../src/data/rng.js');
  const hueOf = (r: number, g: number, b: number): { hue: number; sat: number } => {
    const max = Math.max(r, g, b), min = Math.min(r, g, b), d = max - min;
    if (d === 0) return { hue: 0, sat: 0 };
    const h = max === r ? ((g - b) / d + 6) % 6 : max === g ? (b - r) / d + 2 : (r - g) / d + 4;
    return { hue: h * 60, sat: d / max };
  };
  const hueGap = (a: number, b: number) => Math.min(Math.abs(a - b), 360 - Math.abs(a - b));
  let objects = 0, offHue = 0, bgSaturated = 0, bgPixels = 0;
  for (let i = 0; i < 12; i++) {
    const { image, mask } = renderSynthExample(new Rng(100 + i), 96, 80, 'class');
    for (let p = 0; p < mask.data.length; p++) {
      const k = mask.data[p]!;
      const [r, g, b] = [image.data[3 * p]!, image.data[3 * p + 1]!, image.data[3 * p + 2]!];
      const { hue, sat } = hueOf(r, g, b);
      if (k === 0) {
        bgPixels++;
        if (sat > 0.45) bgSaturated++;
      } else if (k !== 255) {
        objects++;
        if (hueGap(hue, SYNTH_HUES[k - 1]!) > 30) offHue++;
      }
    }
  }
  // grain and shading move single pixels a little; the bulk keeps the class's hue and the muted background
  assert.ok(objects > 1000 && offHue / objects < 0.05, `object pixels off their class hue: ${offHue}/${objects}`);
  assert.ok(bgSaturated / bgPixels < 0.05, `saturated background pixels: ${bgSaturated}/${bgPixels}`);
  assert.equal(SYNTH_DEFAULTS.colours, 'random');
  await assert.rejects(generateSynthVoc(path.join(tmpRoot, 'bad-colours'), { train: 1, val: 0, size: BASE, colours: 'pastel' as 'class' }), /colours must be one of random, class/);
});

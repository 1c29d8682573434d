// A fresh network's weights drawn in pieces (initParametersOf, each tensor from its own point of the
// seeded sequence) and on two threads (initParametersParallel) equal initParameters' exactly, for
// every kind of initialiser the networks use (kaiming normal, PyTorch's uniform default, zeros,
// batch-norm constants, bilinear transposed convs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fcnResNet18, type FcnArchitecture } from '../src/model/fcn.js';
import { initParameters, initParametersOf, parameterDraws, seededRandom, seededRandomAt } from '../src/model/params.js';
import { torchvisionNetwork } from '../src/model/torchvision.js';
import { initParametersParallel } from '../src/train/initworker.js';

function assertSameWeights(got: Map<string, Float32Array>, want: Map<string, Float32Array>, what: string): void {
  assert.deepEqual([...got.keys()], [...want.keys()], `${what}: names and order`);
  for (const [name, w] of want) {
    const g = got.get(name)!;
    assert.equal(g.length, w.length, `${what}: ${name} length`);
    for (let i = 0; i < w.length; i++) if (!Object.is(g[i], w[i])) assert.fail(`${what}: ${name}[${i}] is ${g[i]}, expected ${w[i]}`);
  }
}

const small: [string, () => FcnArchitecture][] = [
  ['fcn_resnet50 width 8', () => torchvisionNetwork('fcn_resnet50', { numClasses: 5, width: 8 })],
  ['deeplabv3_resnet50 width 8', () => torchvisionNetwork('deeplabv3_resnet50', { numClasses: 3, width: 8, asppChannels: 16 })],
  ['lraspp_mobilenet_v3_large', () => torchvisionNetwork('lraspp_mobilenet_v3_large', { numClasses: 4 })],
];

test('seededRandomAt(seed, k) continues seededRandom(seed) after k draws', () => {
  const r = seededRandom(12345);
  const seq = Array.from({ length: 50 }, () => r());
  for (const k of [0, 1, 7, 49]) assert.equal(seededRandomAt(12345, k)(), seq[k]);
});

test('each initialiser declares the draws it makes', () => {
  for (const [what, make] of small) {
    const arch = make();
    let calls = 0;
    const r = seededRandom(1);
    initParameters(arch, () => { calls++; return r(); });
    assert.equal(parameterDraws(arch).reduce((t, d) => t + d.draws, 0), calls, what);
  }
});

test('initParametersOf: any part of the network equals the same tensors of initParameters', () => {
  for (const [what, make] of small) {
    const arch = make();
    const want = initParameters(arch, seededRandom(7));
    const names = parameterDraws(arch).map((d) => d.name);
    const odd = new Set(names.filter((_, i) => i % 2 === 1));
    const part = initParametersOf(arch, 7, odd);
    assertSameWeights(part, new Map([...want].filter(([n]) => odd.has(n))), what);
  }
});

test('initParametersParallel: two threads, the same weights as initParameters', async () => {
  for (const [what, make] of small) {
    const arch = make();
    assertSameWeights(await initParametersParallel(arch, 3, { minDraws: 0 }), initParameters(arch, seededRandom(3)), what);
  }
});

test('initParametersParallel: the book FCN (ResNet-18, two threads by default)', async () => {
  const arch = fcnResNet18({ numClasses: 6, variant: 'fcn8s' });
  assertSameWeights(await initParametersParallel(arch, 0), initParameters(arch, seededRandom(0)), 'fcn8s-resnet18');
});

test('initParameters: seededRandom\'s fast path draws what any generator with the same values draws', () => {
  for (const [what, make] of [...small, ['fcn32s-resnet18', () => fcnResNet18({ numClasses: 6 })] as [string, () => FcnArchitecture]]) {
    const arch = make();
    const r = seededRandom(11);
    assertSameWeights(initParameters(arch, seededRandom(11)), initParameters(arch, () => r()), what);
  }
});

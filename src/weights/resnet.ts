// Which torchvision ResNet a state_dict holds, told from its keys: bottleneck blocks (ResNet-50 and
// deeper) have a third conv per block (`layer1.0.conv3.weight`), basic blocks (ResNet-18/34) two;
// the number of blocks per stage tells the depth. Used to say what a wrong file is, instead of
// failing on the first tensor whose shape differs.

/** Blocks per stage (layer1..layer4) of torchvision's ResNets, by name. */
const DEPTHS: readonly { name: string; bottleneck: boolean; blocks: readonly number[] }[] = [
  { name: 'ResNet-18', bottleneck: false, blocks: [2, 2, 2, 2] },
  { name: 'ResNet-34', bottleneck: false, blocks: [3, 4, 6, 3] },
  { name: 'ResNet-50', bottleneck: true, blocks: [3, 4, 6, 3] },
  { name: 'ResNet-101', bottleneck: true, blocks: [3, 4, 23, 3] },
  { name: 'ResNet-152', bottleneck: true, blocks: [3, 8, 36, 3] },
];

export interface ResNetKind {
  /** 'ResNet-50', or 'a ResNet' when the block counts match none of torchvision's. */
  name: string;
  bottleneck: boolean;
  /** Blocks found in layer1..layer4. */
  blocks: number[];
  /** A key that shows the block kind (e.g. 'layer1.0.conv3.weight'). */
  evidence: string;
}

/** The ResNet a torchvision-layout key set describes (keys without any `module.` prefix), or undefined if it is none. */
export function resnetKind(keys: Iterable<string>): ResNetKind | undefined {
  const all = [...keys];
  const blocks = [0, 0, 0, 0];
  let found = false;
  for (const k of all) {
    const m = /^layer([1-4])\.(\d+)\./.exec(k);
    if (!m) continue;
    found = true;
    const stage = Number(m[1]) - 1;
    blocks[stage] = Math.max(blocks[stage]!, Number(m[2]) + 1);
  }
  if (!found) return undefined;
  const conv3 = all.find((k) => /^layer\d\.\d+\.conv3\.weight$/.test(k));
  const bottleneck = conv3 !== undefined;
  const evidence = conv3 ?? all.find((k) => /^layer\d\.\d+\.conv2\.weight$/.test(k)) ?? all.find((k) => k.startsWith('layer'))!;
  const known = DEPTHS.find((d) => d.bottleneck === bottleneck && d.blocks.every((n, i) => n === blocks[i]));
  return { name: known?.name ?? 'a ResNet', bottleneck, blocks, evidence };
}

/** "torchvision's ResNet-50 (bottleneck blocks 3/4/6/3, e.g. 'layer1.0.conv3.weight')": what a file is, in words. */
export function describeResNet(kind: ResNetKind): string {
  const name = kind.name.startsWith('ResNet') ? `torchvision's ${kind.name}` : kind.name;
  return `${name} (${kind.bottleneck ? 'bottleneck' : 'basic'} blocks ${kind.blocks.join('/')}, e.g. '${kind.evidence}')`;
}

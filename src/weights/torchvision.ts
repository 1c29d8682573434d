// torchvision's segmentation state_dicts (`fcn_resnet50(...).state_dict()` and the published COCO
// weights) and ImageNet ResNet-50/101 and MobileNetV3-Large bodies, recognised from their key names
// and shapes: a ResNet body by `backbone.conv1.weight`, a MobileNetV3 one by `backbone.0.0.weight`;
// FCN vs DeepLabV3 vs LR-ASPP by the classifier's keys, ResNet-50 vs 101 by layer3's block count, the
// class count from the last conv, the aux head by its keys, and the widths from the shapes (the first
// conv of a ResNet body, every block of a MobileNetV3 one, the head's first conv), so width-reduced
// builds of the same structure load too. The declaration uses
// torchvision's keys as parameter names, so the name map is the identity (less `module.` and the
// `num_batches_tracked` counters).
import type { FcnArchitecture } from '../model/fcn.js';
import { fcnParameters, type ParamSpec, type TensorMap } from '../model/params.js';
import { RESNET_BLOCKS, type ResNetDepth } from '../model/resnet.js';
import {
  isResNetNetwork, isTorchvisionNetwork, networkParts, torchvisionNetwork, TORCHVISION_NETWORKS,
  type ResNetNetwork, type TorchvisionArchitecture, type TorchvisionHead,
} from '../model/torchvision.js';
import {
  defaultHeadChannels, HIGH_FEATURE, isMobileNetNetwork, LARGE_BLOCKS, mobilenetChannels,
  type MobileNetArchitecture, type MobileNetChannels, type MobileNetNetwork,
} from '../model/mobilenet.js';
import { FcnError, errorMessage } from '../util/errors.js';
import { encodeSafetensors, type Float32Entry } from './safetensors.js';
import { formatShape, type Tensor } from './tensor.js';

interface Shaped {
  shape: number[];
}

/** The parameter list of a torchvision declaration, in torchvision's state_dict order. */
export function torchvisionParameters(arch: TorchvisionArchitecture): ParamSpec[] {
  return fcnParameters(arch);
}

function isBatchCounter(key: string): boolean {
  return key === 'num_batches_tracked' || key.endsWith('.num_batches_tracked');
}

/** The keys as torchvision's unwrapped module names them: `module.` (nn.DataParallel) stripped when
 *  every key has it, batch counters dropped; order kept. */
export function torchvisionKeys<T>(tensors: ReadonlyMap<string, T>): Map<string, T> {
  const keys = [...tensors.keys()];
  const strip = keys.length > 0 && keys.every((k) => k.startsWith('module.')) ? 7 : 0;
  const out = new Map<string, T>();
  for (const [k, v] of tensors) if (!isBatchCounter(k)) out.set(k.slice(strip), v);
  return out;
}

/** Whether the keys look like a torchvision segmentation model's (a `backbone.*` and a `classifier.*`). */
export function isTorchvisionSegmentation(keys: Iterable<string>): boolean {
  const all = [...torchvisionKeys(new Map([...keys].map((k) => [k, 0]))).keys()];
  return all.some((k) => k.startsWith('backbone.')) && all.some((k) => k.startsWith('classifier.'));
}

/** Whether the keys look like torchvision's ImageNet ResNet-50/101 (bottleneck blocks: `layer1.0.conv3.weight`). */
export function isResNetBottleneckClassifier(keys: Iterable<string>): boolean {
  const all = new Set(torchvisionKeys(new Map([...keys].map((k) => [k, 0]))).keys());
  return all.has('conv1.weight') && all.has('layer1.0.conv3.weight');
}

/** Whether the keys look like torchvision's ImageNet MobileNetV3 (`features.0.0.weight`, `features.1.block.0.0.weight`). */
export function isMobileNetClassifier(keys: Iterable<string>): boolean {
  const all = new Set(torchvisionKeys(new Map([...keys].map((k) => [k, 0]))).keys());
  return all.has('features.0.0.weight') && all.has('features.1.block.0.0.weight');
}

function shapeOf(tensors: ReadonlyMap<string, Shaped>, key: string, file: string, what: string, rank: number): number[] {
  const t = tensors.get(key);
  if (!t) throw new FcnError(`${file}: missing tensor '${key}' (${what})`);
  if (t.shape.length !== rank) throw new FcnError(`${file}: tensor '${key}' has shape ${formatShape(t.shape)}, expected ${rank} dimensions (${what})`);
  return t.shape;
}

/** ResNet-50 or 101 from the number of blocks in `${prefix}layer3`. */
function resnetDepth(tensors: ReadonlyMap<string, Shaped>, prefix: string, file: string): ResNetDepth {
  const re = new RegExp(`^${prefix.replace(/\./g, '\\.')}layer3\\.(\\d+)\\.`);
  let blocks = 0;
  for (const k of tensors.keys()) {
    const m = re.exec(k);
    if (m) blocks = Math.max(blocks, Number(m[1]) + 1);
  }
  for (const [depth, counts] of Object.entries(RESNET_BLOCKS)) if (counts[2] === blocks) return depth as ResNetDepth;
  const known = Object.entries(RESNET_BLOCKS).map(([d, c]) => `${c[2]} (${d})`).join(' or ');
  throw new FcnError(`${file}: '${prefix}layer3' has ${blocks} blocks, expected ${known}`);
}

/** FCN or DeepLabV3 from the classifier's keys. */
function headKind(tensors: ReadonlyMap<string, Shaped>, file: string): TorchvisionHead {
  if (tensors.has('classifier.0.convs.0.0.weight')) return 'deeplabv3';
  if (tensors.has('classifier.0.weight')) return 'fcn';
  const first = [...tensors.keys()].find((k) => k.startsWith('classifier.'));
  throw new FcnError(`${file}: classifier key '${first ?? '(none)'}' fits neither torchvision's FCNHead ('classifier.0.weight' … ` +
    "'classifier.4.weight') nor its DeepLabHead ('classifier.0.convs.0.0.weight' …)");
}

/**
 * The channels of a MobileNetV3-Large body under `prefix` ('backbone.' or 'features.'), read from
 * its shapes: the stem's output, and per block the expand conv's (a 1x1 first conv; without one the
 * first conv is the depthwise k x k and the block keeps its input width), the squeeze-and-excitation
 * fc1's and the projection's outputs. The declaration then checks every tensor.
 */
export function mobilenetChannelsOf(tensors: ReadonlyMap<string, Shaped>, prefix: string, file: string): MobileNetChannels {
  const stem = shapeOf(tensors, `${prefix}0.0.weight`, file, 'the stem conv', 4)[0]!;
  let inC = stem;
  const blocks = LARGE_BLOCKS.map((r, i) => {
    const p = `${prefix}${i + 1}.block.`;
    const first = shapeOf(tensors, `${p}0.0.weight`, file, `block ${i + 1}'s first conv`, 4);
    const expands = first[2] === 1 && r.kernel !== 1;
    const expanded = expands ? first[0]! : inC;
    let j = expands ? 2 : 1;
    const squeeze = r.se ? shapeOf(tensors, `${p}${j++}.fc1.weight`, file, `block ${i + 1}'s squeeze-and-excitation`, 4)[0]! : 0;
    const out = shapeOf(tensors, `${p}${j}.0.weight`, file, `block ${i + 1}'s projection`, 4)[0]!;
    inC = out;
    return { expanded, out, squeeze };
  });
  return { stem, blocks };
}

function recognizeMobileNet(tensors: ReadonlyMap<string, Shaped>, file: string): MobileNetArchitecture {
  const lraspp = tensors.has('classifier.cbr.0.weight');
  if (!lraspp && !tensors.has('classifier.0.convs.0.0.weight')) {
    const first = [...tensors.keys()].find((k) => k.startsWith('classifier.'));
    throw new FcnError(`${file}: classifier key '${first ?? '(none)'}' on a MobileNetV3 body fits neither torchvision's LRASPPHead ` +
      "('classifier.cbr.0.weight' …) nor its DeepLabHead ('classifier.0.convs.0.0.weight' …)");
  }
  const name: MobileNetNetwork = lraspp ? 'lraspp_mobilenet_v3_large' : 'deeplabv3_mobilenet_v3_large';
  const channels = mobilenetChannelsOf(tensors, 'backbone.', file);
  const headChannels = lraspp ? shapeOf(tensors, 'classifier.cbr.0.weight', file, "LR-ASPP's cbr conv", 4)[0]!
    : shapeOf(tensors, 'classifier.0.convs.0.0.weight', file, "ASPP's 1x1 branch", 4)[0]!;
  const numClasses = lraspp ? shapeOf(tensors, 'classifier.low_classifier.weight', file, "LR-ASPP's low classifier", 4)[0]!
    : shapeOf(tensors, 'classifier.4.weight', file, "the classifier's last conv", 4)[0]!;
  const aux = [...tensors.keys()].some((k) => k.startsWith('aux_classifier.'));
  try {
    return torchvisionNetwork(name, { numClasses, aux: lraspp ? undefined : aux, channels, headChannels });
  } catch (err) {
    throw new FcnError(`${file}: ${errorMessage(err)}`);
  }
}

/** Which torchvision network a state_dict (keys already through torchvisionKeys) holds, and its options. */
export function recognizeTorchvision(tensors: ReadonlyMap<string, Shaped>, file: string): TorchvisionArchitecture {
  if (tensors.has('backbone.0.0.weight')) return recognizeMobileNet(tensors, file);
  const head = headKind(tensors, file);
  const depth = resnetDepth(tensors, 'backbone.', file);
  const name = `${head}_${depth}` as ResNetNetwork;
  const width = shapeOf(tensors, 'backbone.conv1.weight', file, 'the body\'s first conv', 4)[0]!;
  const last = shapeOf(tensors, 'classifier.4.weight', file, 'the classifier\'s last conv', 4);
  const numClasses = last[0]!;
  const asppChannels = head === 'deeplabv3' ? shapeOf(tensors, 'classifier.0.convs.0.0.weight', file, 'ASPP\'s 1x1 branch', 4)[0]! : 256;
  const aux = [...tensors.keys()].some((k) => k.startsWith('aux_classifier.'));
  try {
    return torchvisionNetwork(name, { numClasses, aux, width, asppChannels });
  } catch (err) {
    throw new FcnError(`${file}: ${errorMessage(err)}`);
  }
}

/**
 * Checks a state_dict against a declaration: the first tensor (in the file's order) whose shape does
 * not fit, else the first declared tensor the file lacks, else the first tensor the declaration does
 * not have; each one line naming the key.
 */
export function checkAgainst(specs: readonly ParamSpec[], tensors: ReadonlyMap<string, Shaped>, file: string, what: string): void {
  const byName = new Map(specs.map((s) => [s.name, s]));
  for (const [key, t] of tensors) {
    const spec = byName.get(key);
    if (!spec) throw new FcnError(`${file}: tensor '${key}' ${formatShape(t.shape)} is not part of ${what}`);
    if (spec.shape.length !== t.shape.length || spec.shape.some((d, i) => d !== t.shape[i])) {
      throw new FcnError(`${file}: tensor '${key}' has shape ${formatShape(t.shape)}, expected ${formatShape(spec.shape)} for ${what}`);
    }
  }
  const missing = specs.filter((s) => !tensors.has(s.name));
  if (missing.length > 0) {
    throw new FcnError(`${file}: missing tensor '${missing[0]!.name}' ${formatShape(missing[0]!.shape)} of ${what}` +
      (missing.length > 1 ? ` (and ${missing.length - 1} more)` : ''));
  }
}

/** A description of a declaration for messages: 'fcn_resnet50 with 21 classes and the aux head'. */
export function describeTorchvision(arch: TorchvisionArchitecture): string {
  if (isMobileNetNetwork(arch.name)) {
    const o = (arch as MobileNetArchitecture).options;
    const full = JSON.stringify(o.channels) === JSON.stringify(mobilenetChannels(1));
    const head = o.headChannels !== defaultHeadChannels(arch.name);
    const widths = !full || head ? `, stem ${o.channels.stem} / last ${6 * o.channels.blocks[o.channels.blocks.length - 1]!.out} channels, head ${o.headChannels}` : '';
    return `${arch.name} with ${arch.numClasses} classes${o.aux ? ' and the aux head' : ''}${widths}`;
  }
  const o = (arch as Exclude<TorchvisionArchitecture, MobileNetArchitecture>).options;
  const widths = o.width !== 64 || (arch.name.startsWith('deeplabv3') && o.asppChannels !== 256)
    ? `, width ${o.width}${arch.name.startsWith('deeplabv3') ? `/ASPP ${o.asppChannels}` : ''}` : '';
  return `${arch.name} with ${arch.numClasses} classes${o.aux ? ' and the aux head' : ''}${widths}`;
}

/**
 * The network a torchvision segmentation state_dict holds, checked tensor by tensor. `expected`
 * (a network name) forces the family: a file holding another one is a one-line error.
 */
export function torchvisionArchitectureOf(raw: ReadonlyMap<string, Shaped>, file: string, expected?: string): TorchvisionArchitecture {
  const tensors = torchvisionKeys(raw);
  if (expected !== undefined && !isTorchvisionNetwork(expected)) {
    throw new FcnError(`${file}: '${expected}' is not one of torchvision's networks (${TORCHVISION_NETWORKS.join(', ')})`);
  }
  const arch = recognizeTorchvision(tensors, file);
  if (expected !== undefined && arch.name !== expected && !(isResNetNetwork(arch.name) && isResNetNetwork(expected))) {
    const why = isMobileNetNetwork(arch.name) !== isMobileNetNetwork(expected)
      ? (isMobileNetNetwork(arch.name) ? "its body is MobileNetV3-Large ('backbone.0.0.weight')" : "its body is a ResNet ('backbone.conv1.weight')")
      : (arch.name.startsWith('lraspp') ? "its classifier is LR-ASPP ('classifier.cbr.*')" : "its classifier is DeepLabV3's ASPP head ('classifier.0.convs.*')");
    throw new FcnError(`${file}: holds ${arch.name}, not ${expected}: ${why}`);
  }
  if (expected !== undefined && arch.name !== expected && isResNetNetwork(arch.name) && isResNetNetwork(expected)) {
    const want = networkParts(expected);
    const got = networkParts(arch.name);
    const why = want.head !== got.head
      ? (got.head === 'deeplabv3' ? "its classifier is DeepLabV3's ASPP head ('classifier.0.convs.*')" : "its classifier is FCNHead ('classifier.0.weight')")
      : `'backbone.layer3' has ${RESNET_BLOCKS[got.depth][2]} blocks (${got.depth})`;
    throw new FcnError(`${file}: holds ${arch.name}, not ${expected}: ${why}`);
  }
  checkAgainst(torchvisionParameters(arch), tensors, file, describeTorchvision(arch));
  return arch;
}

/** The parameters of torchvision's ImageNet ResNet-50/101 or MobileNetV3-Large body, under the segmentation network's
 *  names (`backbone.` + torchvision's key). */
export function bodyParameters(arch: TorchvisionArchitecture): ParamSpec[] {
  return torchvisionParameters(arch).filter((s) => s.backbone);
}

/**
 * torchvision's ImageNet ResNet-50/101 state_dict (`conv1.weight`, `layer1.0.conv3.weight`, …,
 * `fc.*`) as the body of `arch`: keys gain the `backbone.` prefix, `fc.*` is dropped, the depth and
 * width must be the network's. Returns the renamed tensors, checked.
 */
export function resnetBodyTensors<T extends Shaped>(raw: ReadonlyMap<string, T>, file: string, arch: TorchvisionArchitecture): Map<string, T> {
  const tensors = torchvisionKeys(raw);
  if (!isResNetNetwork(arch.name)) throw new FcnError(`${file}: holds a ResNet ImageNet body, but ${arch.name} needs MobileNetV3-Large's (mobilenet_v3_large-8738ca79.pth)`);
  const depth = resnetDepth(tensors, '', file);
  const want = networkParts(arch.name).depth;
  if (depth !== want) throw new FcnError(`${file}: holds a ${depth} body, but ${arch.name} needs ${want}`);
  const out = new Map<string, T>();
  for (const [k, v] of tensors) if (!k.startsWith('fc.')) out.set(`backbone.${k}`, v);
  checkAgainst(bodyParameters(arch), out, file, `the ${depth} body of ${describeTorchvision(arch)}`);
  return out;
}

/**
 * torchvision's ImageNet MobileNetV3-Large state_dict (`features.0.0.weight`, …, `classifier.*`, the
 * Linear layers) as the body of a MobileNetV3 segmentation network: `features.<i>` becomes
 * `backbone.<i>` (what IntermediateLayerGetter keeps), `classifier.*` is dropped; the widths must be
 * the network's. Returns the renamed tensors, checked.
 */
export function mobilenetBodyTensors<T extends Shaped>(raw: ReadonlyMap<string, T>, file: string, arch: TorchvisionArchitecture): Map<string, T> {
  if (!isMobileNetNetwork(arch.name)) throw new FcnError(`${file}: holds a MobileNetV3 ImageNet body, but ${arch.name} needs a ResNet one`);
  const tensors = torchvisionKeys(raw);
  const out = new Map<string, T>();
  for (const [k, v] of tensors) if (k.startsWith('features.')) out.set(`backbone.${k.slice('features.'.length)}`, v);
  const last = `features.${HIGH_FEATURE}.0.weight`;
  if (!tensors.has(last)) throw new FcnError(`${file}: missing tensor '${last}' (MobileNetV3-Large's last conv; a MobileNetV3-Small has fewer blocks)`);
  checkAgainst(bodyParameters(arch), out, file, `the MobileNetV3-Large body of ${describeTorchvision(arch)}`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// as checkpoints: what src/weights/checkpoint.ts calls

/** The torchvision declaration behind an architecture, when it is one (it carries its options). */
export function asTorchvision(arch: FcnArchitecture): TorchvisionArchitecture | undefined {
  return isTorchvisionNetwork(arch.name) && 'options' in arch ? (arch as TorchvisionArchitecture) : undefined;
}

/** The book's names (`fcn32s` stands for `fcn32s-resnet18`) and torchvision's. */
export const KNOWN_NETWORKS: readonly string[] = Object.freeze(['fcn32s', 'fcn16s', 'fcn8s', ...TORCHVISION_NETWORKS]);

/** The network a name denotes: the book's short names in full; its upsampler's kind ('-grouped') is not another network. */
function fullName(name: string): string {
  return /^fcn(32|16|8)s$/.test(name) ? `${name}-resnet18` : name.replace(/^(fcn(?:32|16|8)s-resnet18)-grouped$/, '$1');
}

/** Checks that a file holding network `actual` is the `expected` one; one line naming both otherwise. */
export function checkArchitectureName(actual: string, expected: string, file: string): void {
  if (!KNOWN_NETWORKS.includes(expected) && !/^fcn(32|16|8)s-resnet18$/.test(expected)) {
    throw new FcnError(`'${expected}' is not a known network (expected one of ${KNOWN_NETWORKS.join(', ')})`, 2);
  }
  if (fullName(actual) !== fullName(expected)) throw new FcnError(`${file}: holds ${actual}, not ${expected}`);
}

/** A torchvision segmentation state_dict, checked against the network it holds: the declaration and
 *  the tensors under its parameter names. */
export function torchvisionFromStateDict(raw: ReadonlyMap<string, Tensor>, file: string, expected?: string): { arch: TorchvisionArchitecture; tensors: Map<string, Tensor> } {
  const forced = expected !== undefined && isTorchvisionNetwork(expected) ? expected : undefined;
  const arch = torchvisionArchitectureOf(raw, file, forced);
  if (expected !== undefined && forced === undefined) checkArchitectureName(arch.name, expected, file);
  return { arch, tensors: torchvisionKeys(raw) };
}

/**
 * The declaration behind our checkpoint's `architecture` metadata when it names a torchvision network
 * (undefined otherwise): widths and aux head from the tensors' shapes, the class count checked.
 */
export function torchvisionFromCheckpoint(name: string, numClasses: number, tensors: ReadonlyMap<string, Tensor>, file: string): FcnArchitecture | undefined {
  if (!isTorchvisionNetwork(name)) return undefined;
  const params = new Map([...tensors].filter(([k]) => /^(backbone|classifier|aux_classifier)\./.test(k)));
  const arch = recognizeTorchvision(params, file);
  checkArchitectureName(arch.name, name, file);
  const last = arch.name.startsWith('lraspp') ? 'classifier.low_classifier.weight' : 'classifier.4.weight';
  if (arch.numClasses !== numClasses) throw new FcnError(`${file}: metadata says ${numClasses} classes, '${last}' has ${arch.numClasses}`);
  return arch;
}

/**
 * Backbone tensors for a torchvision network, under its parameter names: from torchvision's ImageNet
 * ResNet-50/101 state_dict (`fc.*` dropped), or the body of a torchvision segmentation state_dict of
 * the same depth and width. Checked against the declaration.
 */
export function torchvisionBodyTensors(raw: ReadonlyMap<string, Tensor>, file: string, arch: TorchvisionArchitecture): Map<string, Tensor> {
  let body: Map<string, Tensor>;
  if (isTorchvisionSegmentation(raw.keys())) {
    body = new Map([...torchvisionKeys(raw)].filter(([k]) => k.startsWith('backbone.')));
    checkAgainst(bodyParameters(arch), body, file, `the body of ${describeTorchvision(arch)}`);
  } else if (isResNetBottleneckClassifier(raw.keys())) {
    body = resnetBodyTensors(raw, file, arch);
  } else if (isMobileNetClassifier(raw.keys())) {
    body = mobilenetBodyTensors(raw, file, arch);
  } else {
    throw new FcnError(`${file}: not torchvision's ResNet-50/101 ('conv1.weight', 'layer1.0.conv3.weight' …), MobileNetV3-Large ` +
      `('features.0.0.weight' …) nor one of its segmentation networks, so no body for ${arch.name}`);
  }
  return body;
}

/**
 * The weights as a .safetensors state_dict with torchvision's key names, which
 * `model.load_state_dict(safetensors.torch.load_file(path))` accepts (BatchNorm adds its
 * `num_batches_tracked` counters itself when a state_dict has none).
 */
export function encodeTorchvisionStateDict(arch: FcnArchitecture, weights: TensorMap): Uint8Array {
  const tv = asTorchvision(arch);
  if (!tv) throw new FcnError(`${arch.name} is not one of torchvision's networks (${TORCHVISION_NETWORKS.join(', ')}); only those export to its format`);
  const entries = new Map<string, Float32Entry>();
  for (const spec of torchvisionParameters(tv)) {
    const data = weights.get(spec.name);
    if (!data) throw new Error(`encodeTorchvisionStateDict: no weights for '${spec.name}'`);
    entries.set(spec.name, { shape: spec.shape, data });
  }
  // what safetensors.torch.save_file writes
  return encodeSafetensors(entries, { format: 'pt' });
}

// Weight-name layouts and their maps onto our canonical names (torchvision's for the ResNet body,
// plus the head's layer names from the declaration):
// - 'fcn-sequential': the d2l book's `nn.Sequential(*list(resnet18.children())[:-2])` with
//   `final_conv` and `transpose_conv` added, so the body's children are numbered 0..7;
// - 'fcn': our canonical names (`conv1.weight`, `layer1.0.bn2.running_var`, `final_conv.bias`, ...);
// - 'resnet18-torchvision': torchvision's ResNet-18 ImageNet state_dict (`fc.*` is not ours);
// - 'torchvision-segmentation': torchvision's fcn_resnet50/101 and deeplabv3_resnet50/101 state_dicts
//   (`backbone.*`, `classifier.*`, `aux_classifier.*`): their keys are the declaration's names;
// - 'resnet-bottleneck-torchvision': torchvision's ResNet-50/101 ImageNet state_dict (a body for those);
// - 'mobilenet-v3-torchvision': torchvision's MobileNetV3-Large ImageNet state_dict (`features.*`, `classifier.*`).
// `num_batches_tracked` buffers carry no weights and are dropped everywhere.
import { fcnResNet18 } from '../model/fcn.js';
import { paramLayers } from '../model/params.js';
import { FcnError } from '../util/errors.js';
import { isMobileNetClassifier, isResNetBottleneckClassifier, isTorchvisionSegmentation } from './torchvision.js';

export type WeightLayout = 'fcn-sequential' | 'fcn' | 'resnet18-torchvision' | 'torchvision-segmentation' | 'resnet-bottleneck-torchvision'
  | 'mobilenet-v3-torchvision';

/**
 * torchvision ResNet's children in definition order, which is what `list(net.children())` numbers
 * in the book's Sequential (2 = relu and 3 = maxpool own no parameters; avgpool and fc are cut).
 */
export const RESNET_CHILDREN: readonly string[] = Object.freeze(['conv1', 'bn1', 'relu', 'maxpool', 'layer1', 'layer2', 'layer3', 'layer4']);

export const LAYOUT_DESCRIPTIONS: Readonly<Record<WeightLayout, string>> = Object.freeze({
  'fcn-sequential': "the book's FCN (nn.Sequential names)",
  fcn: 'FCN with canonical names',
  'resnet18-torchvision': "torchvision's ResNet-18",
  'torchvision-segmentation': "torchvision's segmentation network",
  'resnet-bottleneck-torchvision': "torchvision's ResNet-50/101",
  'mobilenet-v3-torchvision': "torchvision's MobileNetV3-Large",
});

/** The head's layer names (final_conv, transpose_conv and FCN-8s's skip layers), from the declaration. */
const HEAD_LAYERS: ReadonlySet<string> = new Set(paramLayers(fcnResNet18({ variant: 'fcn8s' })).filter((p) => !p.backbone).map((p) => p.layer.name));

function isBatchCounter(key: string): boolean {
  return key === 'num_batches_tracked' || key.endsWith('.num_batches_tracked');
}

/** Strips the `module.` prefix that nn.DataParallel adds to every key, when all keys have it. */
function stripDataParallel(keys: string[]): { keys: string[]; prefix: string } {
  if (keys.length > 0 && keys.every((k) => k.startsWith('module.'))) return { keys: keys.map((k) => k.slice(7)), prefix: 'module.' };
  return { keys, prefix: '' };
}

/** Tells which layout a set of weight names follows; an FcnError naming `source` for anything else. */
export function detectLayout(keys: Iterable<string>, source: string): WeightLayout {
  const all = stripDataParallel([...keys]).keys.filter((k) => !isBatchCounter(k));
  const has = new Set(all);
  if (isTorchvisionSegmentation(all)) return 'torchvision-segmentation';
  if (isMobileNetClassifier(all)) return 'mobilenet-v3-torchvision';
  if (all.some((k) => /^\d+\./.test(k))) return 'fcn-sequential';
  if (all.some((k) => HEAD_LAYERS.has(k.slice(0, k.lastIndexOf('.'))))) return 'fcn';
  if (isResNetBottleneckClassifier(all)) return 'resnet-bottleneck-torchvision';
  if (has.has('conv1.weight') && all.some((k) => k.startsWith('layer1.'))) return 'resnet18-torchvision';
  const first = all.slice(0, 3).map((k) => `'${k}'`).join(', ');
  throw new FcnError(
    `${source}: unrecognised weight names (${all.length} tensors${first ? `, first ${first}` : ''}); expected the book's FCN ` +
      "('0.weight' … '7.1.bn2.weight', 'final_conv.*', 'transpose_conv.*'), canonical FCN names ('conv1.weight' … 'final_conv.*') " +
      "torchvision's ResNet-18/50/101 ('conv1.weight', 'layer1.0.conv1.weight' …, 'fc.*') or torchvision's segmentation " +
      "networks ('backbone.conv1.weight' …, 'classifier.*')",
  );
}

/** The canonical name of one key of `layout`, or undefined for keys that carry nothing for us (fc.*, num_batches_tracked). */
export function canonicalName(key: string, layout: WeightLayout): string | undefined {
  if (isBatchCounter(key)) return undefined;
  if (layout === 'resnet18-torchvision' || layout === 'resnet-bottleneck-torchvision') return key.startsWith('fc.') ? undefined : key;
  if (layout === 'fcn' || layout === 'torchvision-segmentation' || layout === 'mobilenet-v3-torchvision') return key;
  const m = /^(\d+)\.(.*)$/.exec(key);
  if (!m) return key; // final_conv.*, transpose_conv.*: the same in both
  const child = RESNET_CHILDREN[Number(m[1])];
  // an index the book's Sequential does not have: keep it, so the missing/unexpected check names it
  return child === undefined ? key : `${child}.${m[2]}`;
}

/** The book's Sequential name for a canonical one (inverse of canonicalName for 'fcn-sequential'). */
export function sequentialName(canonical: string): string {
  const dot = canonical.indexOf('.');
  const index = RESNET_CHILDREN.indexOf(canonical.slice(0, dot));
  return index < 0 ? canonical : `${index}${canonical.slice(dot)}`;
}

/** Renames `tensors` from `layout` to canonical names, dropping what carries nothing for us; keeps order. */
export function toCanonical<T>(tensors: ReadonlyMap<string, T>, layout: WeightLayout, source: string): Map<string, T> {
  const { prefix } = stripDataParallel([...tensors.keys()]);
  const out = new Map<string, T>();
  for (const [key, value] of tensors) {
    const name = canonicalName(key.slice(prefix.length), layout);
    if (name === undefined) continue;
    if (out.has(name)) throw new FcnError(`${source}: two tensors map to '${name}'`);
    out.set(name, value);
  }
  return out;
}

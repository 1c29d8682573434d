// Everything `fcn download` knows how to fetch, in one table: where it is published, the file name
// it is kept under, the digest it must have, and what it is. torchvision names its weights
// `<name>-<first 8 hex digits of the SHA-256>.pth` and checks that prefix after downloading
// (torch.hub's check_hash); the datasets carry their publishers' full digests.
import type { ExpectedDigest } from './cache.js';

export type PublishedKind = 'dataset' | 'backbone' | 'network';

/** A dataset archive: extracted safely, and the folder `folder` (its top-level path inside the
 *  archive, which is also where it lands under DIR) must hold `required`. */
export interface ArchiveLayout {
  folder: string;
  required: string[];
}

export interface Published {
  name: string;
  url: string;
  /** The file's name in the download folder. */
  file: string;
  digest: ExpectedDigest;
  /** Bytes, where the publisher's size is known (a file of any other size is refused). */
  size?: number;
  kind: PublishedKind;
  /** One line for --help. */
  description: string;
  archive?: ArchiveLayout;
}

const TORCHVISION = 'https://download.pytorch.org/models/';

/** A torchvision checkpoint: `<stem>-<8 hex>.pth`, SHA-256-prefix checked. */
function torchvision(name: string, file: string, kind: PublishedKind, description: string): Published {
  const m = /-([0-9a-f]{8})\.pth$/.exec(file);
  if (!m) throw new Error(`registry: ${file} does not carry a SHA-256 prefix`);
  return { name, url: TORCHVISION + file, file, digest: { algorithm: 'sha256', hex: m[1]! }, kind, description };
}

export const PUBLISHED: readonly Published[] = [
  {
    name: 'voc2012',
    url: 'http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar',
    file: 'VOCtrainval_11-May-2012.tar',
    size: 1_999_639_040,
    digest: { algorithm: 'sha1', hex: '4e443f8a2eca6b1dac8a6c57641b67dd40621a49' },
    kind: 'dataset',
    description: 'PASCAL VOC2012 trainval (2 GB) -> DIR/VOCdevkit/VOC2012',
    archive: { folder: 'VOCdevkit/VOC2012', required: ['JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation'] },
  },
  {
    name: 'sbd',
    url: 'https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz',
    file: 'benchmark.tgz',
    digest: { algorithm: 'md5', hex: '82b4d87ceb2ed10f6038a1cba92111cb' },
    kind: 'dataset',
    description: "Hariharan et al.'s SBD (1.4 GB, VOC's augmented masks) -> DIR/benchmark_RELEASE",
    archive: { folder: 'benchmark_RELEASE', required: ['dataset/cls', 'dataset/img'] },
  },
  torchvision('resnet18', 'resnet18-f37072fd.pth', 'backbone', 'ImageNet ResNet-18, the book FCN\'s body (--backbone)'),
  torchvision('resnet50', 'resnet50-0676ba61.pth', 'backbone', 'ImageNet ResNet-50, body of fcn_resnet50 / deeplabv3_resnet50'),
  torchvision('resnet101', 'resnet101-63fe2227.pth', 'backbone', 'ImageNet ResNet-101, body of fcn_resnet101 / deeplabv3_resnet101'),
  torchvision('mobilenet_v3_large', 'mobilenet_v3_large-8738ca79.pth', 'backbone', 'ImageNet MobileNetV3-Large, body of the lraspp / deeplabv3 mobilenet nets'),
  torchvision('fcn_resnet50', 'fcn_resnet50_coco-1167a1af.pth', 'network', 'FCN-ResNet50, COCO with VOC classes (60.5 mIoU)'),
  torchvision('fcn_resnet101', 'fcn_resnet101_coco-7ecb50ca.pth', 'network', 'FCN-ResNet101, COCO with VOC classes (63.7 mIoU)'),
  torchvision('deeplabv3_resnet50', 'deeplabv3_resnet50_coco-cd0a2569.pth', 'network', 'DeepLabV3-ResNet50, COCO with VOC classes (66.4 mIoU)'),
  torchvision('deeplabv3_resnet101', 'deeplabv3_resnet101_coco-586e9e4e.pth', 'network', 'DeepLabV3-ResNet101, COCO with VOC classes (67.4 mIoU)'),
  torchvision('lraspp_mobilenet_v3_large', 'lraspp_mobilenet_v3_large-d234d4ea.pth', 'network', 'LR-ASPP MobileNetV3-Large, COCO with VOC classes (57.9 mIoU)'),
  torchvision('deeplabv3_mobilenet_v3_large', 'deeplabv3_mobilenet_v3_large-fc3c493d.pth', 'network', 'DeepLabV3 MobileNetV3-Large, COCO with VOC classes (60.3 mIoU)'),
];

export const PUBLISHED_NAMES: readonly string[] = PUBLISHED.map((p) => p.name);

/** The entry for `name`, or undefined. */
export function published(name: string): Published | undefined {
  return PUBLISHED.find((p) => p.name === name);
}

/** True for the names whose download is a weights file (a body or a whole network). */
export function isPublishedWeights(name: string): boolean {
  const p = published(name);
  return p !== undefined && p.kind !== 'dataset';
}

function entry(name: string): Published {
  const p = published(name);
  if (!p) throw new Error(`registry: no entry ${name}`);
  return p;
}

const voc = entry('voc2012');
const resnet18 = entry('resnet18');

/** The official PASCAL VOC2012 trainval archive (segmentation, detection, ... in one tar). */
export const VOC2012_TRAINVAL = { url: voc.url, file: voc.file, size: voc.size!, sha1: voc.digest.hex } as const;

/** torchvision's ImageNet ResNet-18 (IMAGENET1K_V1); the 8 hex digits in the name start its SHA-256. */
export const RESNET18_IMAGENET = { url: resnet18.url, file: resnet18.file, sha256Prefix: resnet18.digest.hex } as const;

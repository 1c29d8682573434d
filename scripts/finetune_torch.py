#!/usr/bin/python3
"""The PyTorch side of `fcn train`: the same recipe, data pipeline and val scoring, as a whole process.

  /usr/bin/python3 scripts/finetune_torch.py --data DIR --init STATE_DICT.pth --out DIR \
      [--epochs 5] [--batch-size 32] [--crop 320x480] [--lr 0.001] [--wd 1e-3] [--momentum 0] \
      [--lr-schedule constant|poly] [--freeze-backbone] [--seed 0] [--threads N] [--small filter|pad] \
      [--split train] [--val-split val] [--eval-limit N] [--net NAME]

It fine-tunes a torchvision segmentation network from a state_dict (fcn_resnet50/101,
deeplabv3_resnet50/101, lraspp_mobilenet_v3_large, deeplabv3_mobilenet_v3_large; recognised from the
keys, or --net), or without --init trains the d2l book's FCN-32s from random weights (--net book), as
`fcn train --scratch` does. What it repeats of fcn (src/train, src/data):
  - the split's examples smaller than the crop dropped ('filter') or padded with the ImageNet mean
    colour and label 255 ('pad'); the order and the crops drawn by fcn's own generator (xoshiro128**
    seeded by splitmix32, ported below), so both sides see the same crops in the same order; the last
    incomplete batch dropped; no augmentation;
  - RGB/255 normalised with ImageNet's mean and std in float32;
  - torchvision's criterion (cross-entropy averaged over the batch's valid pixels + 0.5 x the aux
    head's) for torchvision's networks, the book's (per image the mean over valid pixels, summed over
    the batch) for the book's;
  - SGD with PyTorch's weight decay and momentum (what fcn's step graph computes), constant or poly lr;
  - --freeze-backbone: the body in eval mode without gradients, the heads trained;
  - after every epoch the val split scored on whole images at their own size (the book's net: padded
    at the bottom/right with zeros to a multiple of 32, logits cropped back), one confusion matrix over
    the split, mIoU over the classes present in the truth or the prediction; last.pth and best.pth
    written (atomically) as fcn writes its checkpoints.
With --write-init FILE it only writes a seeded, randomly initialised state_dict of --net (one of the
networks above with --num-classes and torchvision's aux head where it has one, the book's net, or an
ImageNet-shaped resnet50/resnet101 body) for the other side to start from, and exits.
Dropout masks are PyTorch's own (fcn draws its own): the two runs are the same recipe, not bit-equal.
Prints one JSON line on stdout: val mIoU and pixel accuracy per epoch and of the last epoch, the
seconds spent training, scoring and before the first step, and the whole process's wall time.
"""
import time

T0 = time.time()  # before the imports: they are part of the process's start-up

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

IGNORE = 255
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
MEAN_RGB = tuple(round(255 * m) for m in MEAN)  # the padding colour: normalises to ~0 (fcn's IMAGENET_MEAN_RGB)
TORCHVISION = ('fcn_resnet50', 'fcn_resnet101', 'deeplabv3_resnet50', 'deeplabv3_resnet101',
               'lraspp_mobilenet_v3_large', 'deeplabv3_mobilenet_v3_large')
M32 = 0xFFFFFFFF


def fail(msg):
    print(f'finetune_torch.py: {msg}', file=sys.stderr)
    sys.exit(1)


# ---- fcn's random numbers (src/data/rng.ts): xoshiro128** seeded through splitmix32, in uint32 words

def _imul(a, b):
    return (a * b) & M32


def _rotl(x, k):
    return ((x << k) | (x >> (32 - k))) & M32


class Rng:
    def __init__(self, seed):
        seed = int(seed)
        lo = seed & M32
        hi = (seed // 4294967296) & M32
        self._x = lo ^ _imul(hi, 0x27D4EB2D)
        self.s0 = self._splitmix()
        self.s1 = self._splitmix() ^ hi
        self.s2 = self._splitmix()
        self.s3 = self._splitmix()
        if (self.s0 | self.s1 | self.s2 | self.s3) == 0:
            self.s0 = 1

    def _splitmix(self):
        self._x = (self._x + 0x9E3779B9) & M32
        z = self._x
        z = _imul(z ^ (z >> 16), 0x85EBCA6B)
        z = _imul(z ^ (z >> 13), 0xC2B2AE35)
        return z ^ (z >> 16)

    def next_uint32(self):
        result = _imul(_rotl(_imul(self.s1, 5), 7), 9)
        t = (self.s1 << 9) & M32
        self.s2 ^= self.s0
        self.s3 ^= self.s1
        self.s1 ^= self.s2
        self.s0 ^= self.s3
        self.s2 ^= t
        self.s3 = _rotl(self.s3, 11)
        return result

    def next(self):
        return self.next_uint32() / 4294967296.0

    def int(self, n):
        # n <= 2^32 here (image sides, list lengths): the same double arithmetic as rng.ts
        return math.floor(self.next() * n)

    def shuffle(self, a):
        for i in range(len(a) - 1, 0, -1):
            j = self.int(i + 1)
            a[i], a[j] = a[j], a[i]
        return a


# ---- the dataset (VOC layout: ImageSets/Segmentation/<split>.txt, JPEGImages/<id>.jpg, SegmentationClass/<id>.png)

def voc_root(path):
    for cand in (path, os.path.join(path, 'VOC2012'), os.path.join(path, 'VOCdevkit', 'VOC2012')):
        if os.path.isdir(os.path.join(cand, 'ImageSets', 'Segmentation')):
            return cand
    fail(f'{path}: not a VOC-layout folder (expected ImageSets/Segmentation, JPEGImages and SegmentationClass)')


def split_ids(root, split):
    path = os.path.join(root, 'ImageSets', 'Segmentation', f'{split}.txt')
    if not os.path.isfile(path):
        fail(f'{path}: no such file')
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def read_image(root, id_):
    path = os.path.join(root, 'JPEGImages', f'{id_}.jpg')
    with Image.open(path) as im:
        return np.asarray(im.convert('RGB'))


def read_mask(root, id_, num_classes):
    path = os.path.join(root, 'SegmentationClass', f'{id_}.png')
    with Image.open(path) as im:
        if im.mode not in ('P', 'L'):
            fail(f'{path}: expected a palette or grayscale index PNG, got mode {im.mode}')
        m = np.asarray(im)
    bad = (m >= num_classes) & (m != IGNORE)
    if bad.any():
        fail(f'{path}: label {int(m[bad][0])} is not a class of the network (expected 0..{num_classes - 1} or 255)')
    return m


def image_size(root, id_):
    with Image.open(os.path.join(root, 'JPEGImages', f'{id_}.jpg')) as im:
        return im.height, im.width


def normalise(images):
    """uint8 HxWx3 images of one size -> NCHW float32, (x/255 - mean)/std in float32 as fcn and torchvision."""
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor(MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean) / std


def pad_to(image, mask, h, w):
    H, W = max(image.shape[0], h), max(image.shape[1], w)
    if (H, W) == image.shape[:2]:
        return image, mask
    img = np.empty((H, W, 3), np.uint8)
    img[:] = MEAN_RGB
    img[:image.shape[0], :image.shape[1]] = image
    msk = np.full((H, W), IGNORE, np.uint8)
    msk[:mask.shape[0], :mask.shape[1]] = mask
    return img, msk


def epoch_batches(root, ids, a, rng, num_classes):
    """fcn's epochBatches (src/data/batches.ts): the order, then one seed per example, drawn when the epoch starts."""
    ch, cw = a.crop
    order = rng.shuffle(list(ids))
    plan = [(id_, rng.next_uint32()) for id_ in order]
    for b in range(len(plan) // a.batch_size):
        images, labels = [], []
        for id_, seed in plan[b * a.batch_size:(b + 1) * a.batch_size]:
            image, mask = read_image(root, id_), read_mask(root, id_, num_classes)
            if a.small == 'pad':
                image, mask = pad_to(image, mask, ch, cw)
            r = Rng(seed)
            top = r.int(image.shape[0] - ch + 1)
            left = r.int(image.shape[1] - cw + 1)
            images.append(image[top:top + ch, left:left + cw])
            labels.append(mask[top:top + ch, left:left + cw])
        yield normalise(images), torch.from_numpy(np.stack(labels).astype(np.int64))


# ---- the networks

def recognise(sd):
    """torchvision's network name from a state_dict's keys (what fcn's weights/torchvision.ts recognises)."""
    keys = set(sd)
    if 'classifier.low_classifier.weight' in keys:
        return 'lraspp_mobilenet_v3_large'
    deeplab = any(k.startswith('classifier.0.convs.') for k in keys)
    if any(k.startswith('backbone.layer3.') for k in keys):
        blocks = {k.split('.')[2] for k in keys if k.startswith('backbone.layer3.')}
        depth = {6: 50, 23: 101}.get(len(blocks))
        if depth is None:
            fail(f'backbone.layer3 has {len(blocks)} blocks, expected 6 (ResNet-50) or 23 (ResNet-101)')
        return f"{'deeplabv3' if deeplab else 'fcn'}_resnet{depth}"
    if deeplab and any(k.startswith('backbone.') for k in keys):
        return 'deeplabv3_mobilenet_v3_large'
    fail(f'the keys fit none of {", ".join(TORCHVISION)} (first key: {next(iter(sd), "none")})')


def class_count(sd, net):
    key = 'classifier.low_classifier.weight' if net.startswith('lraspp') else 'classifier.4.weight'
    if key not in sd:
        fail(f"missing tensor '{key}' (the class layer of {net})")
    return sd[key].shape[0]


def torchvision_net(net, num_classes, aux):
    from torchvision.models import segmentation
    kwargs = dict(weights=None, weights_backbone=None, num_classes=num_classes)
    if not net.startswith('lraspp'):
        kwargs['aux_loss'] = aux
    return getattr(segmentation, net)(**kwargs)


def bilinear_kernel(in_c, out_c, k):
    factor = (k + 1) // 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    og = (torch.arange(k).reshape(-1, 1), torch.arange(k).reshape(1, -1))
    filt = (1 - torch.abs(og[0] - center) / factor) * (1 - torch.abs(og[1] - center) / factor)
    weight = torch.zeros((in_c, out_c, k, k))
    weight[range(in_c), range(out_c), :, :] = filt
    return weight


def book_fcn(num_classes):
    """The d2l book's FCN-32s: ResNet-18 body, 1x1 conv, bilinear-initialised ConvTranspose k64 s32 p16."""
    body = torchvision.models.resnet18(weights=None)
    net = nn.Sequential(*list(body.children())[:-2])
    net.add_module('final_conv', nn.Conv2d(512, num_classes, kernel_size=1))
    net.add_module('transpose_conv', nn.ConvTranspose2d(num_classes, num_classes, kernel_size=64, padding=16, stride=32))
    net.transpose_conv.weight.data.copy_(bilinear_kernel(num_classes, num_classes, 64))
    return net


def load_state_dict(path):
    try:
        sd = torch.load(path, map_location='cpu')
    except Exception as err:  # noqa: BLE001 -- any unreadable file is the user's to fix
        fail(f'{path}: cannot read a PyTorch state_dict ({err})')
    if isinstance(sd, dict) and 'model' in sd and isinstance(sd['model'], dict):
        sd = sd['model']  # torchvision reference's checkpoints
    if all(k.startswith('module.') for k in sd):
        sd = {k[len('module.'):]: v for k, v in sd.items()}
    return sd


def build(a):
    """The network, its head modules (trained with --freeze-backbone), its body, and whether it is torchvision's."""
    if a.init is None:
        if a.net not in (None, 'book'):
            fail(f'--net {a.net} needs --init (a torchvision state_dict)')
        torch.manual_seed(a.seed)
        net = book_fcn(a.num_classes)
        return net, list(net.children())[:-2], False
    sd = load_state_dict(a.init)
    name = a.net or recognise(sd)
    if name not in TORCHVISION:
        fail(f'--net expects one of {", ".join(TORCHVISION)} with --init, got {name}')
    aux = any(k.startswith('aux_classifier.') for k in sd)
    net = torchvision_net(name, class_count(sd, name), aux)
    missing, unexpected = net.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith('num_batches_tracked')]
    if missing or unexpected:
        fail(f'{a.init}: does not fit {name}: ' + (f"missing '{missing[0]}'" if missing else f"unexpected '{unexpected[0]}'"))
    a.net = name
    return net, [net.backbone], True


def torchvision_loss(out, labels):
    loss = F.cross_entropy(out['out'], labels, ignore_index=IGNORE)
    if 'aux' in out:
        loss = loss + 0.5 * F.cross_entropy(out['aux'], labels, ignore_index=IGNORE)
    return loss


def book_loss(logits, labels):
    per_pixel = F.cross_entropy(logits, labels, reduction='none', ignore_index=IGNORE)
    valid = (labels != IGNORE).float()
    return (per_pixel.sum((1, 2)) / valid.sum((1, 2)).clamp(min=1)).sum()


# ---- scoring (fcn eval: one confusion matrix over the split)

def predict(net, image, is_torchvision):
    x = normalise([image])
    h, w = image.shape[:2]
    if is_torchvision:
        return net(x)['out'][0].argmax(0)
    ph, pw = -h % 32, -w % 32
    return net(F.pad(x, (0, pw, 0, ph)))[0, :, :h, :w].argmax(0)


def score(net, root, ids, num_classes, is_torchvision):
    net.eval()
    cm = np.zeros((num_classes, num_classes), np.int64)
    with torch.no_grad():
        for id_ in ids:
            pred = predict(net, read_image(root, id_), is_torchvision).numpy().ravel()
            gt = read_mask(root, id_, num_classes).ravel()
            keep = gt != IGNORE
            cm += np.bincount(gt[keep].astype(np.int64) * num_classes + pred[keep], minlength=num_classes ** 2).reshape(num_classes, num_classes)
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - tp
    present = union > 0
    iou = tp[present] / union[present]
    total = cm.sum()
    return {'meanIoU': float(iou.mean()) if present.any() else 0.0, 'pixelAccuracy': float(tp.sum() / total) if total else 0.0}


def write_init(a):
    """A seeded random state_dict of --net, as torchvision's constructors initialise it."""
    torch.manual_seed(a.seed)
    if a.net in (None, 'book'):
        net = book_fcn(a.num_classes)
    elif a.net in ('resnet50', 'resnet101'):
        net = getattr(torchvision.models, a.net)(weights=None)
    elif a.net in TORCHVISION:
        net = torchvision_net(a.net, a.num_classes, not a.net.startswith('lraspp'))
    else:
        fail(f'--net expects book, resnet50, resnet101 or one of {", ".join(TORCHVISION)}, got {a.net}')
    save_atomic(net.state_dict(), a.write_init)
    print(json.dumps({'wrote': a.write_init, 'net': a.net or 'book', 'numClasses': a.num_classes}))


def save_atomic(state, path):
    tmp = f'{path}.tmp-{os.getpid()}'
    torch.save(state, tmp)
    os.replace(tmp, path)


def parse_size(s):
    try:
        h, w = (int(v) for v in s.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected HxW, got {s!r}')
    return h, w


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--write-init', metavar='FILE', help='write a seeded random state_dict of --net to FILE and exit')
    p.add_argument('--data')
    p.add_argument('--init', help="torchvision segmentation state_dict (absent: the book's FCN-32s from random weights)")
    p.add_argument('--net', help='force the network (default: recognised from --init\'s keys; book without --init)')
    p.add_argument('--num-classes', type=int, default=21, help="the book's net's class count (with --init: the state_dict's)")
    p.add_argument('--out')
    p.add_argument('--epochs', type=int, default=5)
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--crop', type=parse_size, default=(320, 480))
    p.add_argument('--lr', type=float, default=0.001)
    p.add_argument('--lr-schedule', choices=['constant', 'poly'], default='constant')
    p.add_argument('--wd', type=float, default=1e-3)
    p.add_argument('--momentum', type=float, default=0.0)
    p.add_argument('--freeze-backbone', action='store_true')
    p.add_argument('--small', choices=['filter', 'pad'], default='filter')
    p.add_argument('--split', default='train')
    p.add_argument('--val-split', default='val')
    p.add_argument('--eval-limit', type=int)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=os.cpu_count())
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.write_init:
        write_init(a)
        return
    if a.data is None or a.out is None:
        p.error('--data and --out are required (or --write-init FILE)')
    net, body, is_torchvision = build(a)
    num_classes = class_count(net.state_dict(), a.net) if is_torchvision else a.num_classes
    a.num_classes = num_classes
    root = voc_root(a.data)
    ch, cw = a.crop
    ids = split_ids(root, a.split)
    if a.small == 'filter':
        ids = [i for i in ids if (lambda s: s[0] >= ch and s[1] >= cw)(image_size(root, i))]
    if len(ids) < a.batch_size:
        fail(f'{root}: the train split has {len(ids)} usable images, fewer than --batch-size {a.batch_size}')
    val_ids = split_ids(root, a.val_split)[:a.eval_limit]
    if a.freeze_backbone:
        for m in body:
            m.requires_grad_(False)
    params = [q for q in net.parameters() if q.requires_grad]
    opt = torch.optim.SGD(params, lr=a.lr, momentum=a.momentum, weight_decay=a.wd)
    criterion = torchvision_loss if is_torchvision else (lambda out, y: book_loss(out, y))
    os.makedirs(a.out, exist_ok=True)
    rng = Rng(a.seed)
    steps_per_epoch = len(ids) // a.batch_size
    total_steps = a.epochs * steps_per_epoch
    history, best, first_step = [], None, None
    train_s = eval_s = 0.0
    for epoch in range(1, a.epochs + 1):
        t = time.time()
        loss_sum, examples = 0.0, 0
        for b, (x, y) in enumerate(epoch_batches(root, ids, a, rng, num_classes)):
            if first_step is None:
                first_step = time.time()
            step = (epoch - 1) * steps_per_epoch + b
            lr = a.lr * (1 - step / total_steps) ** 0.9 if a.lr_schedule == 'poly' else a.lr
            for g in opt.param_groups:
                g['lr'] = lr
            net.train()
            if a.freeze_backbone:
                for m in body:
                    m.eval()
            opt.zero_grad()
            loss = criterion(net(x), y)
            loss.backward()
            opt.step()
            if not math.isfinite(loss.item()):
                fail(f'epoch {epoch}: the loss is {loss.item()} (lower --lr)')
            # per example as fcn's metrics: torchvision's loss is a mean over the batch, the book's a sum
            loss_sum += loss.item() * (x.shape[0] if is_torchvision else 1)
            examples += x.shape[0]
        train_s += time.time() - t
        t = time.time()
        m = score(net, root, val_ids, num_classes, is_torchvision)
        eval_s += time.time() - t
        state = net.state_dict()
        save_atomic(state, os.path.join(a.out, 'last.pth'))
        if best is None or m['meanIoU'] > best:
            best = m['meanIoU']
            save_atomic(state, os.path.join(a.out, 'best.pth'))
        history.append({'epoch': epoch, 'loss': loss_sum / examples, 'valMeanIoU': m['meanIoU'], 'valPixelAccuracy': m['pixelAccuracy']})
        print(f'epoch {epoch}/{a.epochs}: loss {loss_sum / examples:.4f}, val mIoU {m["meanIoU"]:.3f}, pixel acc {m["pixelAccuracy"]:.3f}',
              file=sys.stderr)
    print(json.dumps({
        'engine': 'pytorch', 'version': torch.__version__, 'net': a.net or 'book', 'numClasses': num_classes,
        'trainExamples': steps_per_epoch * a.batch_size, 'valImages': len(val_ids), 'epochs': a.epochs, 'threads': a.threads,
        'valMeanIoU': history[-1]['valMeanIoU'], 'valPixelAccuracy': history[-1]['valPixelAccuracy'], 'bestValMeanIoU': best,
        'history': history, 'trainSeconds': round(train_s, 3), 'evalSeconds': round(eval_s, 3),
        'firstStepSeconds': round(first_step - T0, 3), 'wallSeconds': round(time.time() - T0, 3),
    }))


if __name__ == '__main__':
    main()

#!/usr/bin/python3
"""PyTorch-made fixtures for torchvision's segmentation networks (src/model/torchvision.ts, mobilenet.ts).

Width-reduced builds of the SAME torchvision classes: torchvision's `ResNet._make_layer` and
`Bottleneck` (with `replace_stride_with_dilation=[False, True, True]`, so layer3/layer4 dilate as
torchvision sets it), `IntermediateLayerGetter`, `FCNHead`, `ASPP` and the `FCN` / `DeepLabV3`
models; only the base width (64 → WIDTH) and ASPP's channels (256 → ASPP) are smaller. The
MobileNetV3 networks come from torchvision's own builders (`_mobilenet_v3_conf(width_mult=0.25,
dilated=True)`, `_lraspp_mobilenetv3`, `_deeplabv3_mobilenetv3`) with narrower heads. Seeded
weights with non-trivial batch-norm statistics; eval mode.

Run with Debian's PyTorch (never needed to build or test the package):
    /usr/bin/python3 scripts/make_torchvision_fixtures.py      # writes test/fixtures/torchvision/

Fixtures (test/fixtures/torchvision/):
  <net>.pth             the state_dict as torch.save writes it (torchvision's keys: backbone.*,
                        classifier.*, aux_classifier.* when aux)
  image_a.png, image_b.png   RGB pictures of 37x53 and 29x41 (sides not multiples of 8)
  <net>.f32 / <net>.u8  per image: the main logits 1xCxHxW (float32) and their argmax (uint8 HxW);
                        aux logits too for networks with the aux head
  <net>_train.pth, train.f32, train.u8   one SGD step of width-reduced fcn_resnet50,
                        deeplabv3_resnet50, deeplabv3_mobilenet_v3_large (aux heads) and
                        lraspp_mobilenet_v3_large (none) in training mode (torchvision's criterion:
                        CE(out) + 0.5 CE(aux), ignore 255; SGD with weight decay; fixed dropout masks fed
                        to both sides): inputs, masks, every gradient, weights and running statistics
                        after the step; results.train has the losses
  mask_b.png            a mask for image_b; results.eval: torchvision's reference evaluation (its eval
                        preset and ConfusionMatrix) of fcn_resnet50 (resize 24) and deeplabv3_resnet50
                        (own size) on images a, b with masks a, b
  mask_a.png, resize.u8  torchvision's evaluation resize (F.resize on PIL, shorter side 24 and 80) of
                        image_a (bilinear, HxWx3) and of mask_a (nearest): 'resize/image_<size>',
                        'resize/mask_<size>'
  manifest.json         as test/helpers/fixtures.ts reads it: tensors '<net>/logits_<image>',
                        '<net>/mask_<image>', '<net>/aux_<image>'; results per net: its options and, per
                        image, the smallest top-1/top-2 logit gap, max |logit| and fp32-vs-fp64 error
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.resnet import Bottleneck, ResNet
from torchvision.models.segmentation.deeplabv3 import ASPP, DeepLabV3
from torchvision.models.segmentation.fcn import FCN, FCNHead
from torchvision.models.mobilenetv3 import MobileNetV3, _mobilenet_v3_conf
from torchvision.models.segmentation.deeplabv3 import _deeplabv3_mobilenetv3
from torchvision.models.segmentation.lraspp import LRASPPHead, _lraspp_mobilenetv3

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
OUT = os.path.join(ROOT, 'test', 'fixtures', 'torchvision')
WIDTH = 4
ASPP_CHANNELS = 16
MOBILENET_WIDTH = 0.25
CLASSES = 5
BLOCKS = {'resnet50': [3, 4, 6, 3], 'resnet101': [3, 4, 23, 3]}
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


class NarrowResNet(ResNet):
    """torchvision's ResNet with base width `width` instead of 64: the same stem and the same
    `_make_layer` (strides, dilation, downsample rule), so only the channel counts shrink."""

    def __init__(self, layers, width, replace_stride_with_dilation):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = width
        self.dilation = 1
        self.groups = 1
        self.base_width = 64  # Bottleneck's inner width = planes * base_width / 64 = planes
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(Bottleneck, width, layers[0])
        self.layer2 = self._make_layer(Bottleneck, 2 * width, layers[1], stride=2, dilate=replace_stride_with_dilation[0])
        self.layer3 = self._make_layer(Bottleneck, 4 * width, layers[2], stride=2, dilate=replace_stride_with_dilation[1])
        self.layer4 = self._make_layer(Bottleneck, 8 * width, layers[3], stride=2, dilate=replace_stride_with_dilation[2])


def deeplab_head(in_channels, num_classes, aspp):
    # torchvision's DeepLabHead with ASPP's 256 channels as a parameter (the same Sequential)
    return nn.Sequential(
        ASPP(in_channels, [12, 24, 36], out_channels=aspp),
        nn.Conv2d(aspp, aspp, 3, padding=1, bias=False),
        nn.BatchNorm2d(aspp),
        nn.ReLU(),
        nn.Conv2d(aspp, num_classes, 1),
    )


def build_mobilenet(name, aux, width_mult, head_channels, classes):
    """lraspp_mobilenet_v3_large / deeplabv3_mobilenet_v3_large exactly as torchvision's builders
    assemble them (`mobilenet_v3_large(dilated=True)` through `_mobilenet_v3_conf`, then
    `_lraspp_mobilenetv3` / `_deeplabv3_mobilenetv3`), with torchvision's own `width_mult` and the
    head's width (LR-ASPP's inter_channels 128, ASPP's 256) as parameters of the same classes."""
    setting, last_channel = _mobilenet_v3_conf('mobilenet_v3_large', width_mult=width_mult, dilated=True)
    backbone = MobileNetV3(setting, last_channel)
    if name.startswith('lraspp'):
        model = _lraspp_mobilenetv3(backbone, classes)
        low, high = model.classifier.low_classifier.in_channels, model.classifier.cbr[0].in_channels
        model.classifier = LRASPPHead(low, high, classes, head_channels)
        return model
    model = _deeplabv3_mobilenetv3(backbone, classes, aux)
    model.classifier = deeplab_head(model.classifier[0].convs[0][0].in_channels, classes, head_channels)
    return model


def build(name, aux, width=WIDTH, aspp=ASPP_CHANNELS, classes=CLASSES):
    """The torchvision network `name` (fcn_resnet50, deeplabv3_resnet101, ...) at reduced width, as
    torchvision's _fcn_resnet / _deeplabv3_resnet assemble it (MobileNetV3 ones: `width` is the
    width_mult, `aspp` the head's width)."""
    if 'mobilenet' in name:
        return build_mobilenet(name, aux, width, aspp, classes)
    head, body = name.split('_')
    backbone = NarrowResNet(BLOCKS[body], width, [False, True, True])
    return_layers = {'layer4': 'out'}
    if aux:
        return_layers['layer3'] = 'aux'
    backbone = IntermediateLayerGetter(backbone, return_layers=return_layers)
    out_c = 8 * width * Bottleneck.expansion
    aux_classifier = FCNHead(out_c // 2, classes) if aux else None
    if head == 'fcn':
        return FCN(backbone, FCNHead(out_c, classes), aux_classifier)
    return DeepLabV3(backbone, deeplab_head(out_c, classes, aspp), aux_classifier)


def seed_weights(model, seed):
    """Random weights that keep activations in range through 100+ layers: convs with
    kaiming-normal (fan_in) scale, BN with random affine and running statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
    # running statistics that fit the activations (a cumulative average over a few random batches in
    # training mode), so the eval-mode network stays in range; then perturbed so they are not exact
    momenta = {}
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            momenta[m] = m.momentum  # MobileNetV3's body: 0.01
            m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(2, 3, 48, 64, generator=g))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = momenta[m]
                m.running_mean.add_(torch.randn(m.num_features, generator=g) * 0.05)
                m.running_var.mul_(0.8 + 0.4 * torch.rand(m.num_features, generator=g))
        # logits of a few units, as a trained network gives, so fp32 noise is small next to 1e-4
        last = [model.classifier.low_classifier, model.classifier.high_classifier] if isinstance(model.classifier, LRASPPHead) \
            else [h[-1] for h in (model.classifier, getattr(model, 'aux_classifier', None)) if h is not None]
        for conv in last:
            conv.weight.mul_(0.1)
    model.eval()


def picture(h, w, seed):
    """A smooth synthetic picture with edges plus noise (uint8 HxWx3)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([
        128 + 100 * np.sin(x / 5.0 + seed),
        128 + 100 * np.cos(y / 7.0 - seed),
        np.where((x - w / 2) ** 2 + (y - h / 2) ** 2 < (min(h, w) / 3) ** 2, 220.0, 40.0),
    ], axis=-1)
    img += rng.normal(0, 12, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def normalise(img):
    # the project's arithmetic: rgb * (1 / (255 std)) - mean / std, in float32
    x = img.astype(np.float32) * (np.float32(1) / (np.float32(255) * STD)) - MEAN / STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)[None]))


# (name, aux head, base width): the 101s narrower still, to keep the files small
NETS = [
    ('fcn_resnet50', True, WIDTH),
    ('deeplabv3_resnet50', True, WIDTH),
    ('fcn_resnet101', False, 2),
    ('deeplabv3_resnet101', False, 2),
    # MobileNetV3-Large at torchvision's width_mult 0.25, heads 8 (LR-ASPP) / 16 (ASPP) wide
    ('lraspp_mobilenet_v3_large', False, MOBILENET_WIDTH),
    ('deeplabv3_mobilenet_v3_large', True, MOBILENET_WIDTH),
]
HEAD_CHANNELS = {'lraspp_mobilenet_v3_large': 8}
IMAGES = {'a': (37, 53, 1), 'b': (29, 41, 2)}


def main():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    images = {}
    for key, (h, w, seed) in IMAGES.items():
        img = picture(h, w, seed)
        Image.fromarray(img).save(os.path.join(OUT, f'image_{key}.png'))
        images[key] = img
    manifest = {
        'fixture': 'torchvision',
        'description': "width-reduced torchvision segmentation networks (eval mode): state_dicts, logits, masks",
        'settings': {
            'torch': torch.__version__, 'aspp': ASPP_CHANNELS, 'classes': CLASSES, 'blocks': BLOCKS,
            'mean': MEAN.tolist(), 'std': STD.tolist(), 'images': {k: [h, w] for k, (h, w, _) in IMAGES.items()},
        },
        'results': {},
        'tensors': {},
        'images': {k: f'image_{k}.png' for k in IMAGES},
    }
    for i, (name, aux, width) in enumerate(NETS):
        head_channels = HEAD_CHANNELS.get(name, ASPP_CHANNELS)
        model = build(name, aux, width, head_channels)
        seed_weights(model, 100 + i)
        model.eval()
        torch.save(model.state_dict(), os.path.join(OUT, f'{name}.pth'))
        f32 = bytearray()
        u8 = bytearray()
        entry = {'pth': f'{name}.pth', 'aux': aux, 'width': width, 'aspp': head_channels, 'classes': CLASSES,
                 'tensors': len(model.state_dict()), 'images': {}}
        for key, img in images.items():
            with torch.no_grad():
                out = model(normalise(img))
                # float64 forward: how far fp32 itself is from the exact result
                ref = build(name, aux, width, head_channels).double()
                ref.load_state_dict(model.state_dict())
                ref.eval()
                exact = ref(normalise(img).double())['out']
            logits = out['out']
            top2 = logits.topk(2, dim=1).values
            entry['images'][key] = {
                'maxAbsLogit': float(logits.abs().max()),
                'minGap': float((top2[:, 0] - top2[:, 1]).min()),
                'fp32VsFp64MaxAbs': float((logits.double() - exact).abs().max()),
            }
            manifest['tensors'][f'{name}/logits_{key}'] = {'file': f'{name}.f32', 'offset': len(f32), 'dtype': 'float32', 'shape': list(logits.shape)}
            f32 += logits.numpy().astype('<f4').tobytes()
            manifest['tensors'][f'{name}/mask_{key}'] = {'file': f'{name}.u8', 'offset': len(u8), 'dtype': 'uint8', 'shape': list(logits.shape[2:])}
            u8 += logits.argmax(1)[0].numpy().astype(np.uint8).tobytes()
            if aux and 'aux' in out:
                manifest['tensors'][f'{name}/aux_{key}'] = {'file': f'{name}.f32', 'offset': len(f32), 'dtype': 'float32', 'shape': list(out['aux'].shape)}
                f32 += out['aux'].numpy().astype('<f4').tobytes()
        with open(os.path.join(OUT, f'{name}.f32'), 'wb') as fh:
            fh.write(f32)
        with open(os.path.join(OUT, f'{name}.u8'), 'wb') as fh:
            fh.write(u8)
        manifest['results'][name] = entry
        print(name, entry['images'], os.path.getsize(os.path.join(OUT, f'{name}.pth')), 'bytes', file=sys.stderr)
    resize_fixture(manifest, images['a'])
    eval_fixture(manifest, images)
    train_fixture(manifest)
    with open(os.path.join(OUT, 'manifest.json'), 'w') as fh:
        json.dump(manifest, fh, indent=1)
        fh.write('\n')


def resize_fixture(manifest, img):
    """torchvision's evaluation resize (SegmentationPresetEval: F.resize(image, size) on PIL images,
    the target with NEAREST) of image_a and a mask of its size, shorter side to 24 and to 80."""
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode
    rng = np.random.default_rng(5)
    mask = rng.integers(0, 5, img.shape[:2]).astype(np.uint8)
    mask[5:12, 20:40] = 255
    Image.fromarray(mask).save(os.path.join(OUT, 'mask_a.png'))
    manifest['images']['mask_a'] = 'mask_a.png'
    blob = bytearray()
    for size in (24, 80):
        im = TF.resize(Image.fromarray(img), size)
        mk = TF.resize(Image.fromarray(mask), size, interpolation=InterpolationMode.NEAREST)
        a = np.asarray(im, dtype=np.uint8)
        b = np.asarray(mk, dtype=np.uint8)
        manifest['tensors'][f'resize/image_{size}'] = {'file': 'resize.u8', 'offset': len(blob), 'dtype': 'uint8', 'shape': list(a.shape)}
        blob += a.tobytes()
        manifest['tensors'][f'resize/mask_{size}'] = {'file': 'resize.u8', 'offset': len(blob), 'dtype': 'uint8', 'shape': list(b.shape)}
        blob += b.tobytes()
    with open(os.path.join(OUT, 'resize.u8'), 'wb') as fh:
        fh.write(blob)


def eval_fixture(manifest, images):
    """torchvision's segmentation reference evaluation (SegmentationPresetEval + ConfusionMatrix) of
    two networks on the two images with masks (mask_a.png from resize_fixture, mask_b.png here):
    fcn_resnet50 with the resize to shorter side 24, deeplabv3_resnet50 at the images' own size."""
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode
    rng = np.random.default_rng(6)
    h, w = images['b'].shape[:2]
    mask_b = rng.integers(0, 5, (h, w)).astype(np.uint8)
    mask_b[:4] = 255
    Image.fromarray(mask_b).save(os.path.join(OUT, 'mask_b.png'))
    manifest['images']['mask_b'] = 'mask_b.png'
    masks = {'a': np.asarray(Image.open(os.path.join(OUT, 'mask_a.png'))), 'b': mask_b}
    out = {}
    for i, (name, resize) in enumerate([('fcn_resnet50', 24), ('deeplabv3_resnet50', None)]):
        model = build(name, True)
        model.load_state_dict(torch.load(os.path.join(OUT, f'{name}.pth')))
        model.eval()
        n = CLASSES
        mat = torch.zeros((n, n), dtype=torch.int64)
        for key in ('a', 'b'):
            image, target = Image.fromarray(images[key]), Image.fromarray(masks[key])
            if resize is not None:
                image = TF.resize(image, resize)
                target = TF.resize(target, resize, interpolation=InterpolationMode.NEAREST)
            x = TF.normalize(TF.convert_image_dtype(TF.pil_to_tensor(image), torch.float), mean=MEAN.tolist(), std=STD.tolist())
            y = torch.as_tensor(np.array(target), dtype=torch.int64)
            with torch.no_grad():
                pred = model(x[None])['out'].argmax(1)[0]
            # torchvision's references/segmentation/utils.py ConfusionMatrix.update
            a, b = y.flatten(), pred.flatten()
            k = (a >= 0) & (a < n)
            inds = n * a[k] + b[k]
            mat += torch.bincount(inds, minlength=n ** 2).reshape(n, n)
        out[name] = {'resize': resize, 'confusionMatrix': mat.tolist()}
    manifest['results']['eval'] = out


class FixedDropout(nn.Module):
    """nn.Dropout with a given keep-mask (the one fed to our step): y = x * keep / (1 - p)."""

    def __init__(self, p, keep):
        super().__init__()
        self.p = p
        self.keep = keep

    def forward(self, x):
        return x * self.keep / (1 - self.p)


TRAIN = {'batch': 3, 'height': 26, 'width': 34, 'width_base': 2, 'aspp': 8, 'classes': 3, 'lr': 0.01, 'wd': 1e-4, 'width_mult': 0.25}


def criterion(out, labels):
    """torchvision's segmentation reference: CE(out), + 0.5 CE(aux) when the model has an aux head."""
    loss = F.cross_entropy(out['out'], labels, ignore_index=255)
    return loss + 0.5 * F.cross_entropy(out['aux'], labels, ignore_index=255) if 'aux' in out else loss


def train_fixture(manifest):
    """One SGD step of width-reduced fcn_resnet50 and deeplabv3_resnet50 (aux heads) in training mode
    as torchvision's segmentation reference takes it: criterion = cross_entropy(out, y, ignore 255) +
    0.5 * cross_entropy(aux, y, ignore 255); loss.backward(); SGD(lr, weight_decay). Dropout masks are
    drawn here and fed to both sides (named as our graph's step inputs, '<dropout output>:keep').
    Stored: initial weights (<net>_train.pth), inputs, masks, loss, every gradient, the running
    statistics after the step. Batch 3: with 2 images, batch-norm over the 1x1 pooled features of
    ASPP's pooling branch normalises 2 values to +-1 and the gradient into its conv is exactly 0
    (both sides then compare rounding noise)."""
    T = TRAIN
    g = torch.Generator().manual_seed(77)
    N, H, W = T['batch'], T['height'], T['width']
    x = torch.randn(N, 3, H, W, generator=g)
    labels = torch.randint(0, T['classes'], (N, H, W), generator=g)
    labels[0, :5, :] = 255
    labels[1, :, -3:] = 255
    labels[2, 10:14, 10:20] = 255
    f32 = bytearray()
    u8 = bytearray()

    def put(name, t):
        nonlocal f32
        a = t.detach().contiguous().numpy().astype('<f4')
        manifest['tensors'][name] = {'file': 'train.f32', 'offset': len(f32), 'dtype': 'float32', 'shape': list(t.shape)}
        f32 += a.tobytes()

    def put_u8(name, a):
        nonlocal u8
        manifest['tensors'][name] = {'file': 'train.u8', 'offset': len(u8), 'dtype': 'uint8', 'shape': list(a.shape)}
        u8 += a.astype(np.uint8).tobytes()

    put('train/x', x)
    put_u8('train/labels', labels.numpy())
    results = {'settings': T}
    for i, name in enumerate(['fcn_resnet50', 'deeplabv3_resnet50', 'lraspp_mobilenet_v3_large', 'deeplabv3_mobilenet_v3_large']):
        width = T['width_mult'] if 'mobilenet' in name else T['width_base']
        model = build(name, True, width, T['aspp'], T['classes'])
        seed_weights(model, 300 + i)
        torch.save(model.state_dict(), os.path.join(OUT, f'{name}_train.pth'))
        # the dropout layers, by our graph's step-input names
        drops = {'aux_classifier/3:keep': (model.aux_classifier, 3)} if getattr(model, 'aux_classifier', None) is not None else {}
        if name.startswith('lraspp'):
            pass  # LR-ASPP has no dropout
        elif name.startswith('fcn'):
            drops['classifier/3:keep'] = (model.classifier, 3)
        else:
            drops['classifier.0/out:keep'] = (model.classifier[0].project, 3)
        model.train()
        # the shapes the masks need: run once in eval mode with hooks
        shapes = {}
        hooks = [parent[idx].register_forward_hook(lambda m, inp, out, k=key: shapes.__setitem__(k, tuple(out.shape)))
                 for key, (parent, idx) in drops.items()]
        model.eval()
        with torch.no_grad():
            model(x)
        for h in hooks:
            h.remove()
        model.train()
        for key, (parent, idx) in drops.items():
            p = parent[idx].p
            keep = (torch.rand(shapes[key], generator=g) >= p)
            parent[idx] = FixedDropout(p, keep.float())
            put_u8(f'train/{name}/{key}', keep.numpy())
        # the same step in float64: how far PyTorch's own fp32 gradients are from exact ("fp32 noise")
        ref = build(name, True, width, T['aspp'], T['classes'])
        ref.load_state_dict(torch.load(os.path.join(OUT, f'{name}_train.pth')))
        for key, (parent, idx) in drops.items():
            ref_parent = ref.aux_classifier if key.startswith('aux') else (ref.classifier if name.startswith('fcn') else ref.classifier[0].project)
            ref_parent[idx] = FixedDropout(parent[idx].p, parent[idx].keep.double())
        ref = ref.double().train()
        out64 = ref(x.double())
        criterion(out64, labels).backward()
        grad64 = {k: prm.grad for k, prm in ref.named_parameters()}
        out = model(x)
        loss = criterion(out, labels)
        loss.backward()
        noise = {k: float((prm.grad.double() - grad64[k]).norm() / grad64[k].norm().clamp_min(1e-30)) for k, prm in model.named_parameters()}
        for k, prm in model.named_parameters():
            put(f'train/{name}/grad/{k}', prm.grad)
        opt = torch.optim.SGD(model.parameters(), lr=T['lr'], weight_decay=T['wd'])
        opt.step()
        for k, b in model.state_dict().items():
            if 'running' in k:
                put(f'train/{name}/new/{k}', b)
            elif 'num_batches' not in k:
                put(f'train/{name}/new/{k}', b)
        results[name] = {'loss': float(loss), 'pth': f'{name}_train.pth', 'masks': list(drops), 'fp32Noise': noise}
        print(name, 'train loss', float(loss), file=sys.stderr)
    manifest['results']['train'] = results
    with open(os.path.join(OUT, 'train.f32'), 'wb') as fh:
        fh.write(f32)
    with open(os.path.join(OUT, 'train.u8'), 'wb') as fh:
        fh.write(u8)


if __name__ == '__main__':
    main()

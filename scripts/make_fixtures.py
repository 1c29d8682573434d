#!/usr/bin/python3
"""PyTorch-made reference fixtures for the TS engine: inference, bilinear upsampling, the training step.

Run with Debian's PyTorch (never needed to build or test the package):
    /usr/bin/python3 scripts/make_fixtures.py [formula|infer|upsample|train_step|train_adamw ...]

Writes test/fixtures/{formula.json, infer/, upsample/, train_step/, train_adamw/} (test/fixtures/pth/ belongs to
another script). The network is the d2l book's PyTorch FCN; its weights come from a closed-form
formula that test/helpers/formula.ts computes identically, so fixtures store only inputs and
outputs. Tensors are raw little-endian files (.f32, .u8), several tensors may share one file at
byte offsets; each fixture's manifest.json names them with shapes, dtypes, settings and scalars.
"""
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from PIL import Image

torch.set_num_threads(2)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures')
NUM_CLASSES = 21
IGNORE_INDEX = 255
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SAMPLE_MAX = 4096  # larger tensors are stored as every k-th element

# ----------------------------------------------------------------------------------------------
# The deterministic weight formula (mirrored by test/helpers/formula.ts; change both or neither)
# ----------------------------------------------------------------------------------------------

FORMULA_DOC = {
    'seed': 'seed(name) = (sum_k charCode(name[k]) * (k+1)) mod 1009',
    'u': 'u[i] = sin(0.7071 * i + 0.1 * seed(name)), i the flat row-major index, float64',
    'conv weight (4-D, not transpose_conv)': 'u * sqrt(2 / fan_in), fan_in = shape[1]*shape[2]*shape[3]',
    'bn weight (1-D weight)': '1 + 0.25 * u',
    'bn bias, conv bias': '0.1 * u',
    'running_mean': '0.1 * u',
    'running_var': '1 + 0.5 * u * u',
    'transpose_conv.weight': 'float32(bilinear_kernel(C, C, 64)) + 0.01 * u (kernel from float64 filt, rounded)',
    'rounding': 'every value computed in float64 and rounded once to float32',
}


def formula_seed(name):
    return sum(ord(c) * (k + 1) for k, c in enumerate(name)) % 1009


def formula_u(name, n):
    i = np.arange(n, dtype=np.float64)
    return np.sin(0.7071 * i + 0.1 * formula_seed(name))


def bilinear_filt64(in_channels, out_channels, kernel_size):
    """The book's bilinear_kernel computed in float64 (TS's bilinearKernel does the same, then rounds)."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = np.arange(kernel_size, dtype=np.float64)
    filt = (1 - np.abs(og[:, None] - center) / factor) * (1 - np.abs(og[None, :] - center) / factor)
    weight = np.zeros((in_channels, out_channels, kernel_size, kernel_size))
    for c in range(min(in_channels, out_channels)):
        weight[c, c] = filt
    return weight


def formula_tensor(name, shape):
    shape = tuple(int(s) for s in shape)
    n = int(np.prod(shape))
    u = formula_u(name, n)
    last = name.rsplit('.', 1)[-1]
    if name == 'transpose_conv.weight':
        base = bilinear_filt64(shape[0], shape[1], shape[2]).astype(np.float32).astype(np.float64).ravel()
        v = base + 0.01 * u
    elif last == 'weight' and len(shape) == 4:
        v = u * math.sqrt(2 / (shape[1] * shape[2] * shape[3]))
    elif last == 'weight' and len(shape) == 1:
        v = 1 + 0.25 * u
    elif last in ('bias', 'running_mean'):
        v = 0.1 * u
    elif last == 'running_var':
        v = 1 + 0.5 * u * u
    else:
        raise ValueError(f'formula: no rule for tensor {name!r}')
    return v.astype(np.float32).reshape(shape)


# ----------------------------------------------------------------------------------------------
# The book's network and our canonical parameter names
# ----------------------------------------------------------------------------------------------

BOOK_PREFIX = {'0': 'conv1', '1': 'bn1', '4': 'layer1', '5': 'layer2', '6': 'layer3', '7': 'layer4'}


def canonical(key):
    head, rest = key.split('.', 1)
    return f'{BOOK_PREFIX.get(head, head)}.{rest}'


def book_bilinear_kernel(in_channels, out_channels, kernel_size):
    """d2l 13.10.3, verbatim (float32 torch arithmetic)."""
    factor = (kernel_size + 1) // 2
    if kernel_size % 2 == 1:
        center = factor - 1
    else:
        center = factor - 0.5
    og = (torch.arange(kernel_size).reshape(-1, 1),
          torch.arange(kernel_size).reshape(1, -1))
    filt = (1 - torch.abs(og[0] - center) / factor) * \
           (1 - torch.abs(og[1] - center) / factor)
    weight = torch.zeros((in_channels, out_channels, kernel_size, kernel_size))
    weight[range(in_channels), range(out_channels), :, :] = filt
    return weight


def book_fcn(num_classes):
    pretrained_net = torchvision.models.resnet18(weights=None)
    net = nn.Sequential(*list(pretrained_net.children())[:-2])
    net.add_module('final_conv', nn.Conv2d(512, num_classes, kernel_size=1))
    net.add_module('transpose_conv', nn.ConvTranspose2d(num_classes, num_classes,
                                                        kernel_size=64, padding=16, stride=32))
    return net


def formula_fcn(num_classes, dtype=torch.float32):
    """The book's FCN with every parameter and buffer from the formula (values rounded to float32 first)."""
    net = book_fcn(num_classes)
    state = {}
    for key, value in net.state_dict().items():
        if key.endswith('num_batches_tracked'):
            state[key] = value
        else:
            state[key] = torch.from_numpy(formula_tensor(canonical(key), value.shape))
    net.load_state_dict(state)
    return net.to(dtype)


def canonical_params(net):
    return [(canonical(k), p) for k, p in net.named_parameters()]


def bn_modules(net):
    return [(canonical(k + '.x').rsplit('.', 1)[0], m) for k, m in net.named_modules() if isinstance(m, nn.BatchNorm2d)]


def backbone_eval(net):
    """Frozen-backbone mode: body in eval (running stats), no gradients; only the head trains."""
    net.train()
    for key, m in net.named_children():
        if key not in ('final_conv', 'transpose_conv'):
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)
    return [p for k, p in net.named_parameters() if p.requires_grad]


# ----------------------------------------------------------------------------------------------
# Writing fixtures
# ----------------------------------------------------------------------------------------------

class Fixture:
    """Collects tensors into packed raw files plus one manifest.json."""

    def __init__(self, name, description):
        self.dir = os.path.join(ROOT, name)
        if os.path.isdir(self.dir):
            shutil.rmtree(self.dir)
        os.makedirs(self.dir)
        self.meta = {'fixture': name, 'description': description, 'settings': {}, 'results': {}, 'tensors': {}}
        self.files = {}

    def add(self, name, array, file=None, **info):
        array = np.ascontiguousarray(array)
        if array.dtype == np.float32:
            dtype, ext = 'float32', 'f32'
        elif array.dtype == np.uint8:
            dtype, ext = 'uint8', 'u8'
        else:
            raise TypeError(f'{name}: unsupported dtype {array.dtype}')
        file = f'{file or name}.{ext}'
        data = array.astype('<f4' if dtype == 'float32' else 'u1').tobytes()
        chunks = self.files.setdefault(file, [])
        offset = sum(len(c) for c in chunks)
        chunks.append(data)
        entry = {'file': file, 'offset': offset, 'dtype': dtype, 'shape': list(array.shape)}
        entry.update(info)
        self.meta['tensors'][name] = entry

    def add_sampled(self, name, tensor, file):
        """Full tensor if small, else every k-th element plus the full tensor's L2 norm and sum."""
        full = tensor.detach().to(torch.float64).numpy().ravel()
        n = full.size
        # The smallest stride keeping <= SAMPLE_MAX values that is coprime to n: a stride sharing a factor
        # with the inner dimensions (9 for 3x3 kernels) would only ever sample the same kernel tap.
        k = max(1, math.ceil(n / SAMPLE_MAX))
        while math.gcd(k, n) != 1:
            k += 1
        info = {'fullShape': list(tensor.shape), 'stride': k,
                'l2': float(np.sqrt(np.sum(full * full))), 'sum': float(np.sum(full))}
        self.add(name, tensor.detach().to(torch.float32).numpy().ravel()[::k], file=file, **info)

    def add_png(self, name, rgb_hwc):
        path = os.path.join(self.dir, f'{name}.png')
        Image.fromarray(rgb_hwc, 'RGB').save(path, optimize=True)
        self.meta.setdefault('images', {})[name] = f'{name}.png'

    def write(self):
        for file, chunks in self.files.items():
            with open(os.path.join(self.dir, file), 'wb') as f:
                for c in chunks:
                    f.write(c)
        with open(os.path.join(self.dir, 'manifest.json'), 'w') as f:
            json.dump(self.meta, f, indent=1)
            f.write('\n')
        size = sum(os.path.getsize(os.path.join(self.dir, p)) for p in os.listdir(self.dir))
        print(f'{self.meta["fixture"]}: {len(os.listdir(self.dir))} files, {size / 1024:.0f} KiB')


def synthetic_rgb(height, width, seed, noise=40):
    """A smooth picture with hard edges (gradients, a disc, a bar) plus pseudo-random noise, uint8 HWC."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 128 + 100 * np.sin(xx / width * 3.1 + seed)
    g = 128 + 100 * np.cos(yy / height * 2.3 + 0.5 * seed)
    b = 60 + 150 * (xx + yy) / (width + height)
    img = np.stack([r, g, b], axis=-1)
    disc = (yy - 0.45 * height) ** 2 + (xx - 0.6 * width) ** 2 < (0.28 * min(height, width)) ** 2
    img[disc] = (230, 40, 30)
    bar = (xx > 0.15 * width) & (xx < 0.3 * width)
    img[bar] = (20, 20, 200)
    img = img + rng.uniform(-noise, noise, img.shape) if noise else img
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def normalise(rgb_hwc):
    """to_tensor + Normalize(MEAN, STD), float32 as torchvision does it: (x/255 - mean) / std."""
    x = torch.from_numpy(rgb_hwc).permute(2, 0, 1).contiguous().to(torch.float32).div(255)
    mean = torch.tensor(MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32).view(3, 1, 1)
    return ((x - mean) / std).unsqueeze(0)


def argmax_margins(logits):
    """Per-pixel gap between the best and second-best logit (small gaps may flip in another engine)."""
    top2 = torch.topk(logits, 2, dim=1).values
    return top2[:, 0] - top2[:, 1]


def rel_l2(a, b):
    a = a.detach().to(torch.float64)
    b = b.detach().to(torch.float64)
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))


# ----------------------------------------------------------------------------------------------
# formula.json: literal values for test/formula.test.ts
# ----------------------------------------------------------------------------------------------

def make_formula_literals():
    net = book_fcn(NUM_CLASSES)
    shapes = {canonical(k): list(v.shape) for k, v in net.state_dict().items() if not k.endswith('num_batches_tracked')}
    names = ['conv1.weight', 'bn1.weight', 'bn1.bias', 'bn1.running_mean', 'bn1.running_var',
             'layer1.0.conv1.weight', 'layer2.0.downsample.0.weight', 'layer3.1.bn2.running_var',
             'layer4.1.conv2.weight', 'layer4.1.bn2.weight', 'final_conv.weight', 'final_conv.bias',
             'transpose_conv.weight', 'transpose_conv.bias']
    entries = []
    for name in names:
        t = formula_tensor(name, shapes[name]).ravel()
        n = t.size
        picks = sorted({0, 1, 2, n // 3, n // 2, n - 2, n - 1})
        entries.append({'name': name, 'shape': shapes[name], 'seed': formula_seed(name),
                        'indices': picks, 'values': [float(t[i]) for i in picks],
                        'sum': float(np.sum(t.astype(np.float64))),
                        'sumAbs': float(np.sum(np.abs(t.astype(np.float64))))})
    out = {'description': 'Literal values of the deterministic weight formula, computed by scripts/make_fixtures.py',
           'formula': FORMULA_DOC,
           'parameters': [{'name': k, 'shape': v} for k, v in shapes.items()],
           'tensors': entries}
    with open(os.path.join(ROOT, 'formula.json'), 'w') as f:
        json.dump(out, f, indent=1)
        f.write('\n')
    print(f'formula.json: {len(entries)} tensors, {len(shapes)} parameters and buffers')


# ----------------------------------------------------------------------------------------------
# 1. infer/
# ----------------------------------------------------------------------------------------------

def make_infer():
    fx = Fixture('infer', 'Eval-mode logits of the book FCN (formula weights, 21 classes) for a 64x96 input and a '
                 '97x131 input padded with zeros at the bottom/right to 128x160, logits cropped back to 97x131.')
    net = formula_fcn(NUM_CLASSES).eval()
    net64 = formula_fcn(NUM_CLASSES, torch.float64).eval()
    fx.meta['settings'] = {'numClasses': NUM_CLASSES, 'mode': 'eval', 'weights': 'formula (test/helpers/formula.ts)',
                           'normalisation': {'mean': MEAN, 'std': STD, 'how': '(rgb/255 - mean)/std in float32'},
                           'padding': 'zeros (normalised space) at bottom and right to a multiple of 32',
                           'argmax': 'first maximum over the class axis', 'torch': torch.__version__}
    cases = [('a', 64, 96, 1), ('b', 97, 131, 2)]
    for tag, h, w, seed in cases:
        rgb = synthetic_rgb(h, w, seed)
        fx.add_png(f'image_{tag}', rgb)
        x = normalise(rgb)
        ph, pw = math.ceil(h / 32) * 32, math.ceil(w / 32) * 32
        xp = torch.zeros(1, 3, ph, pw)
        xp[:, :, :h, :w] = x
        with torch.no_grad():
            logits = net(xp)[:, :, :h, :w].contiguous()
            logits64 = net64(xp.double())[:, :, :h, :w]
        mask = torch.argmax(logits, dim=1).to(torch.uint8)
        fx.add(f'x_{tag}', x.numpy())
        fx.add(f'logits_{tag}', logits.numpy())
        fx.add(f'mask_{tag}', mask.numpy())
        counts = np.bincount(mask.numpy().ravel(), minlength=NUM_CLASSES)
        fx.meta['results'][tag] = {
            'inputSize': [h, w], 'paddedSize': [ph, pw],
            'maxAbsLogit': float(logits.abs().max()), 'meanLogit': float(logits.mean()), 'stdLogit': float(logits.std()),
            'argmaxMinMargin': float(argmax_margins(logits).min()),
            'argmaxPixelsWithMarginBelow1e-4': int((argmax_margins(logits) < 1e-4).sum()),
            'maskClassCounts': counts.tolist(),
            'fp32VsFp64': {'maxAbs': float((logits.double() - logits64).abs().max()), 'relL2': rel_l2(logits, logits64)},
        }
        r = fx.meta['results'][tag]
        print(f'infer {tag}: max|logit| {r["maxAbsLogit"]:.3f}, std {r["stdLogit"]:.3f}, classes in mask '
              f'{int((counts > 0).sum())}, min margin {r["argmaxMinMargin"]:.2e}, fp32-vs-fp64 relL2 {r["fp32VsFp64"]["relL2"]:.1e}')
        if not (0.1 < r['maxAbsLogit'] < 1e4) or not np.isfinite(logits.numpy()).all():
            sys.exit(f'infer {tag}: degenerate logits (max |logit| {r["maxAbsLogit"]}); adjust the formula scales')
    fx.write()


# ----------------------------------------------------------------------------------------------
# 2. upsample/
# ----------------------------------------------------------------------------------------------

def upsample(x, scale):
    """Kernel 2s, stride s, padding s//2 (the book's rule for even s). For odd s PyTorch's symmetric padding
    s//2 gives s*H + 1 rows, so the last row and column are cropped: the same as ONNX pads
    [s//2, s//2, ceil(s/2), ceil(s/2)], which is how src/graph/upsample.ts makes the output exactly s x."""
    k = 2 * scale
    p = scale // 2
    layer = nn.ConvTranspose2d(3, 3, kernel_size=k, padding=p, stride=scale, bias=False)
    layer.weight.data.copy_(book_bilinear_kernel(3, 3, k))
    h, w = x.shape[2] * scale, x.shape[3] * scale
    with torch.no_grad():
        y = layer(x)[:, :, :h, :w].contiguous()
    return y, layer.weight.detach(), k, p


def make_upsample():
    fx = Fixture('upsample', "The book's bilinear upsampling by a transposed convolution (d2l 'Initializing Transposed "
                 "Convolutional Layers') applied to to_tensor(image.png): float output and the uint8 picture.")
    h, w = 40, 56
    rgb = synthetic_rgb(h, w, seed=3, noise=0)
    fx.add_png('image', rgb)
    fx.add('image_rgb', rgb)  # HWC, the decoded PNG, so tests need no decoder
    x = torch.from_numpy(rgb).permute(2, 0, 1).to(torch.float32).div(255).unsqueeze(0)
    fx.meta['settings'] = {'input': 'to_tensor(image.png): CHW float32 = rgb/255', 'size': [h, w],
                           'bilinearKernel': "the book's bilinear_kernel in float32 torch arithmetic",
                           'toUint8': 'in float64: clamp to [0,1], *255, floor(v + 0.5) (halves round up, as JS Math.round), HWC RGB',
                           'layerRule': 'nn.ConvTranspose2d(3, 3, kernel_size=2s, stride=s, padding=s//2, bias=False); '
                                        'for odd s the output (s*H+1 rows) is cropped to its first s*H rows and '
                                        's*W columns, i.e. ONNX pads [s//2, s//2, ceil(s/2), ceil(s/2)]',
                           'torch': torch.__version__}
    for scale in (2, 3):
        y, kernel, k, p = upsample(x, scale)
        assert y.shape[2:] == (h * scale, w * scale), y.shape
        scaled = y.double().clamp(0, 1) * 255  # in float64, as JS arithmetic does it
        u8 = torch.floor(scaled + 0.5).to(torch.uint8)[0].permute(1, 2, 0).contiguous()
        # Outputs whose scaled value sits within 1e-3 of a .5 tie may round either way in another engine
        frac = (scaled - torch.floor(scaled)).double()
        near_tie = int(((frac - 0.5).abs() < 1e-3).sum())
        fx.add(f'kernel_x{scale}', kernel.numpy())
        fx.add(f'out_x{scale}', y[0].numpy())
        fx.add(f'out_x{scale}_u8', u8.numpy())
        fx.meta['results'][f'x{scale}'] = {'scale': scale, 'kernelSize': k, 'padding': p, 'stride': scale,
                                           'onnxPads': [p, p, scale - p, scale - p],
                                           'outputSize': [h * scale, w * scale], 'nearTies': near_tie,
                                           'min': float(y.min()), 'max': float(y.max())}
        print(f'upsample x{scale}: kernel {k}, padding {p}, out {tuple(y.shape)}, range [{float(y.min()):.3f}, '
              f'{float(y.max()):.3f}], {near_tie} outputs near a rounding tie')
    fx.write()


# ----------------------------------------------------------------------------------------------
# 3. train_step/
# ----------------------------------------------------------------------------------------------

def book_loss(logits, labels):
    """Per-pixel softmax CE, 255 ignored; per image the mean over its valid pixels, summed over the batch."""
    per_pixel = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction='none')
    valid = (labels != IGNORE_INDEX).to(logits.dtype)
    return (per_pixel.sum(dim=(1, 2)) / valid.sum(dim=(1, 2))).sum()


STEP_TENSORS = ['conv1.weight', 'layer4.1.bn2.weight', 'final_conv.bias', 'transpose_conv.weight']
HEAD_TENSORS = ['final_conv.weight', 'final_conv.bias', 'transpose_conv.weight', 'transpose_conv.bias']


def train_batch():
    """The training fixtures' batch: 2 images of 64x64, random labels with 10 % void (train_step stores it)."""
    n, h, w = 2, 64, 64
    rgb = np.stack([synthetic_rgb(h, w, seed=10 + i) for i in range(n)])
    x = torch.cat([normalise(rgb[i]) for i in range(n)])
    rng = np.random.RandomState(7)
    labels_np = rng.randint(0, NUM_CLASSES, size=(n, h, w)).astype(np.uint8)
    labels_np[rng.uniform(size=(n, h, w)) < 0.1] = IGNORE_INDEX
    return x, labels_np


def optimiser_steps(mode, make_optimiser, steps, x, labels):
    """`steps` updates of the book FCN (formula weights) on one batch, in 'full' mode (train-mode BN, every
    parameter) or 'head' mode (frozen eval-mode body): the net after, the losses computed before each
    update, and the loss of the weights after the last update (a further forward, no update)."""
    net = formula_fcn(NUM_CLASSES)
    trained = backbone_eval(net) if mode == 'head' else list(net.train().parameters())
    opt = make_optimiser(trained)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = book_loss(net(x), labels)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    with torch.no_grad():
        final_loss = float(book_loss(net(x), labels))
    return net, losses, final_loss


def make_train_step():
    fx = Fixture('train_step', 'Loss, gradients, BN running statistics and SGD steps of the book FCN (formula weights) '
                 'on one batch, in full mode (train-mode BN, all parameters) and head mode (frozen eval-mode body).')
    x, labels_np = train_batch()
    n, h, w = labels_np.shape
    labels = torch.from_numpy(labels_np).long()
    fx.add('x', x.numpy())
    fx.add('labels', labels_np)
    lr, wd, momentum = 0.01, 1e-3, 0.9
    fx.meta['settings'] = {
        'numClasses': NUM_CLASSES, 'batch': n, 'size': [h, w], 'ignoreIndex': IGNORE_INDEX,
        'weights': 'formula (test/helpers/formula.ts), the same start for every mode',
        'loss': 'sum over images of (sum of per-pixel softmax CE over pixels with label != 255) / (count of such pixels)',
        'full': 'net.train(): BN uses batch statistics (biased variance), running stats updated with momentum 0.1 '
                'and the unbiased variance; gradients of every parameter',
        'head': 'body (everything before final_conv) in eval mode and requires_grad False; '
                'gradients of final_conv.* and transpose_conv.*',
        'sampling': f'tensors with more than {SAMPLE_MAX} elements are stored as flat[::stride], stride the '
                    f'smallest integer >= ceil(n/{SAMPLE_MAX}) coprime to n; l2 and sum are of the full tensor',
        'sgd': {'lr': lr, 'weightDecay': wd, 'momentum': momentum, 'steps': 3, 'dampening': 0, 'nesterov': False,
                'rule': 'torch.optim.SGD: d = g + wd*w; buf = d (first step) else momentum*buf + d; w -= lr*buf; '
                        'weight decay applies to every trained parameter, BN and biases included; '
                        'the same batch every step; losses are those computed before each update'},
        'torch': torch.__version__,
    }
    results = fx.meta['results']

    # (a) full mode, fp32 and fp64
    grads = {}
    for dtype in (torch.float32, torch.float64):
        net = formula_fcn(NUM_CLASSES, dtype).train()
        loss = book_loss(net(x.to(dtype)), labels)
        loss.backward()
        grads[dtype] = {name: p.grad.detach().clone() for name, p in canonical_params(net)}
        if dtype == torch.float32:
            results['full'] = {'loss': float(loss), 'gradRelL2Fp32VsFp64': {}}
            for name, g in grads[dtype].items():
                fx.add_sampled(f'full/grad/{name}', g, file='full_grads')
            for prefix, m in bn_modules(net):
                fx.add(f'full/{prefix}.running_mean', m.running_mean.detach().numpy(), file='full_running')
                fx.add(f'full/{prefix}.running_var', m.running_var.detach().numpy(), file='full_running')
        else:
            results['full']['lossFp64'] = float(loss)
    rel = {name: rel_l2(grads[torch.float32][name], grads[torch.float64][name]) for name in grads[torch.float32]}
    results['full']['gradRelL2Fp32VsFp64'] = rel
    results['full']['gradRelL2Fp32VsFp64Summary'] = {'median': float(np.median(list(rel.values()))),
                                                     'max': float(max(rel.values()))}
    print(f'full: loss {results["full"]["loss"]:.6f} (fp64 {results["full"]["lossFp64"]:.6f}), fp32-vs-fp64 grad relL2 '
          f'median {results["full"]["gradRelL2Fp32VsFp64Summary"]["median"]:.1e}, max {max(rel.values()):.1e}')

    # (b) head mode, fp32 and fp64
    head = {}
    for dtype in (torch.float32, torch.float64):
        net = formula_fcn(NUM_CLASSES, dtype)
        backbone_eval(net)
        loss = book_loss(net(x.to(dtype)), labels)
        loss.backward()
        head[dtype] = {name: p.grad.detach().clone() for name, p in canonical_params(net) if p.requires_grad}
        assert sorted(head[dtype]) == sorted(HEAD_TENSORS), sorted(head[dtype])
        key = 'loss' if dtype == torch.float32 else 'lossFp64'
        results.setdefault('head', {})[key] = float(loss)
    for name in HEAD_TENSORS:
        fx.add_sampled(f'head/grad/{name}', head[torch.float32][name], file='head_grads')
    results['head']['gradRelL2Fp32VsFp64'] = {name: rel_l2(head[torch.float32][name], head[torch.float64][name])
                                              for name in HEAD_TENSORS}
    print(f'head: loss {results["head"]["loss"]:.6f}, fp32-vs-fp64 grad relL2 max '
          f'{max(results["head"]["gradRelL2Fp32VsFp64"].values()):.1e}')

    # (c) three SGD steps in each mode
    for mode, tensors in (('full', STEP_TENSORS), ('head', HEAD_TENSORS)):
        net, losses, final_loss = optimiser_steps(
            mode, lambda trained: torch.optim.SGD(trained, lr=lr, momentum=momentum, weight_decay=wd), 3, x, labels)
        params = dict(canonical_params(net))
        for name in tensors:
            fx.add_sampled(f'steps_{mode}/{name}', params[name], file=f'steps_{mode}')
        results[f'steps_{mode}'] = {'losses': losses, 'lossAfter': final_loss, 'tensors': tensors,
                                    'note': 'lossAfter: the loss of the weights after the 3 updates (a 4th forward in the '
                                            'same mode, no update)'}
        print(f'steps {mode}: losses {", ".join(f"{l:.6f}" for l in losses)}, after {final_loss:.6f}')
    fx.write()


def make_train_adamw():
    fx = Fixture('train_adamw', 'Two torch.optim.AdamW steps of the book FCN (formula weights) on train_step\'s batch '
                 '(x.f32 and labels.u8 there), in head mode and full mode: losses and the weights after.')
    x, labels_np = train_batch()
    labels = torch.from_numpy(labels_np).long()
    # wd large so that the decoupled decay (lr*wd*w per step) is a visible share of each weight's change
    lr, wd, steps = 1e-3, 5.0, 2
    fx.meta['settings'] = {
        'adamw': {'lr': lr, 'weightDecay': wd, 'betas': [0.9, 0.999], 'eps': 1e-8, 'amsgrad': False, 'steps': steps,
                  'rule': 'torch.optim.AdamW: w *= 1 - lr*wd; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2; '
                          'w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps); t counts from 1; '
                          'the same batch every step; losses are those computed before each update'},
        'batch': "train_step's x and labels", 'torch': torch.__version__,
    }
    results = fx.meta['results']
    for mode, tensors in (('head', HEAD_TENSORS), ('full', STEP_TENSORS)):
        net, losses, final_loss = optimiser_steps(
            mode, lambda trained: torch.optim.AdamW(trained, lr=lr, weight_decay=wd), steps, x, labels)
        params = dict(canonical_params(net))
        for name in tensors:
            fx.add_sampled(f'{mode}/{name}', params[name], file=mode)
        results[mode] = {'losses': losses, 'lossAfter': final_loss, 'tensors': tensors}
        print(f'adamw {mode}: losses {", ".join(f"{l:.6f}" for l in losses)}, after {final_loss:.6f}')
    fx.write()


MAKERS = {'formula': lambda: make_formula_literals(), 'infer': lambda: make_infer(), 'upsample': lambda: make_upsample(),
          'train_step': lambda: make_train_step(), 'train_adamw': lambda: make_train_adamw()}


def main():
    """Every fixture, or those named on the command line (e.g. `make_fixtures.py train_adamw`)."""
    os.makedirs(ROOT, exist_ok=True)
    names = sys.argv[1:] or list(MAKERS)
    for name in names:
        if name not in MAKERS:
            sys.exit(f'make_fixtures.py: unknown fixture {name!r} (expected {", ".join(MAKERS)})')
        MAKERS[name]()
    total = 0
    for dirpath, _, files in os.walk(ROOT):
        if os.path.relpath(dirpath, ROOT).split(os.sep)[0] == 'pth':
            continue
        total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    print(f'total (without pth/): {total / 1024 / 1024:.2f} MiB')


if __name__ == '__main__':
    main()

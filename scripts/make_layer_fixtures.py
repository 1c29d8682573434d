#!/usr/bin/python3
"""PyTorch-made reference fixtures for the layer kinds torchvision's segmentation networks add.

Run with Debian's PyTorch (never needed to build or test the package):
    /usr/bin/python3 scripts/make_layer_fixtures.py

Writes test/fixtures/layers/ (format: see test/fixtures/README.md): for each case the inputs, the
parameters, an upstream gradient R, PyTorch's output y and autograd's gradients of <R, y>:
dilated (and grouped) convolutions, per-class (grouped) transposed convolutions, F.interpolate(mode='bilinear', align_corners=False) up, down,
from 1x1 and mixed, global average pooling, MobileNetV3's depthwise convolutions, hard swish, hard
sigmoid, sigmoid and the broadcast product, torchvision's segmentation loss (cross-entropy averaged
over the batch's valid pixels, ignore 255, + 0.5 x the auxiliary output's); and 'mininet', a tiny
network of every new kind (dilated body, ASPP-like branches with image pooling, concat, dropout with
a stored mask, auxiliary head, bilinear resize to the input), its loss, gradients and new running
statistics in one training-mode step. Tiny random tensors, stored in full.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture  # noqa: E402

torch.set_num_threads(2)
IGNORE = 255


def rand(gen, *shape, scale=1.0):
    return (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale).to(torch.float32)


def add(fx, name, t):
    fx.add(name, t.detach().contiguous().numpy().astype(np.float32), file='tensors')


def op_case(fx, gen, name, settings, inputs, fn):
    """inputs: {name: tensor}; fn(**inputs) -> y. Stores inputs, R, y and d<R, y>/d(input)."""
    leaves = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
    y = fn(**leaves)
    R = rand(gen, *y.shape)
    (y.double() * R.double()).sum().backward()
    for k, v in inputs.items():
        add(fx, f'{name}/{k}', v)
        add(fx, f'{name}/grad/{k}', leaves[k].grad)
    add(fx, f'{name}/R', R)
    add(fx, f'{name}/y', y)
    fx.meta['results'][name] = settings


def tv_loss(out, aux, labels):
    loss = F.cross_entropy(out, labels, ignore_index=IGNORE)
    return loss + 0.5 * F.cross_entropy(aux, labels, ignore_index=IGNORE) if aux is not None else loss


def make_ops(fx, gen):
    for name, (xs, ws, stride, pad, dil, groups, bias) in {
        'conv_d2': ((2, 3, 9, 11), (4, 3, 3, 3), 1, 2, 2, 1, True),
        'conv_d3s2': ((2, 3, 13, 10), (5, 3, 3, 3), 2, 1, 3, 1, False),
        'conv_d2k1p1': ((1, 2, 5, 6), (3, 2, 1, 1), 1, 1, 2, 1, True),
        'conv_g2': ((1, 4, 7, 7), (6, 2, 3, 3), 1, 2, 2, 2, True),
    }.items():
        inputs = {'x': rand(gen, *xs), 'weight': rand(gen, *ws, scale=0.3)}
        if bias:
            inputs['bias'] = rand(gen, ws[0], scale=0.1)
        settings = {'stride': stride, 'pad': pad, 'dilation': dil, 'groups': groups, 'bias': bias, 'out': ws[0], 'in': xs[1], 'kernel': ws[2]}
        op_case(fx, gen, name, settings, inputs,
                lambda x, weight, bias=None, s=stride, p=pad, d=dil, g=groups: F.conv2d(x, weight, bias, s, p, d, g))
    for name, (xs, size) in {
        'resize_up': ((2, 3, 4, 5), (9, 13)),
        'resize_down': ((2, 3, 9, 13), (4, 5)),
        'resize_1x1': ((2, 3, 1, 1), (5, 7)),
        'resize_mixed': ((1, 2, 5, 3), (2, 8)),
        'resize_x8': ((1, 2, 3, 4), (24, 32)),
    }.items():
        op_case(fx, gen, name, {'size': list(size)}, {'x': rand(gen, *xs)},
                lambda x, size=size: F.interpolate(x, size=size, mode='bilinear', align_corners=False))
    op_case(fx, gen, 'gap', {}, {'x': rand(gen, 2, 3, 5, 7)}, lambda x: F.adaptive_avg_pool2d(x, 1))

    # torchvision's segmentation loss, main + 0.5 aux; one image has no valid pixel at all
    N, C, H, W = 3, 5, 6, 7
    labels = torch.randint(0, C, (N, H, W), generator=gen)
    labels[torch.rand(N, H, W, generator=gen) < 0.3] = IGNORE
    labels[2] = IGNORE
    out = rand(gen, N, C, H, W, scale=2.0).requires_grad_(True)
    aux = rand(gen, N, C, H, W, scale=2.0).requires_grad_(True)
    loss = tv_loss(out, aux, labels)
    loss.backward()
    add(fx, 'loss_tv/out', out)
    add(fx, 'loss_tv/aux', aux)
    add(fx, 'loss_tv/grad/out', out.grad)
    add(fx, 'loss_tv/grad/aux', aux.grad)
    fx.add('loss_tv/labels', labels.to(torch.uint8).numpy(), file='labels')
    fx.meta['results']['loss_tv'] = {'loss': float(loss), 'main': float(F.cross_entropy(out, labels, ignore_index=IGNORE))}


# ---- the mini network: every new kind in one training-mode step (mirrored by test/helpers/mininet.ts)
MINI = {'classes': 3, 'batch': 2, 'height': 16, 'width': 20, 'p': 0.5}


def mini_params(gen):
    C = MINI['classes']
    shapes = {
        'conv1.weight': (4, 3, 3, 3), 'bn1': 4,
        'conv2.weight': (6, 4, 3, 3), 'bn2': 6,
        'aux.weight': (C, 6, 1, 1), 'aux.bias': (C,),
        'b0.weight': (4, 6, 1, 1), 'b0bn': 4,
        'b1.weight': (4, 6, 3, 3), 'b1bn': 4,
        'pool.weight': (4, 6, 1, 1), 'poolbn': 4,
        'project.weight': (4, 12, 1, 1), 'projectbn': 4,
        'head.weight': (C, 4, 1, 1), 'head.bias': (C,),
    }
    params = {}
    for name, shape in shapes.items():
        if isinstance(shape, int):
            params[f'{name}.weight'] = 1 + 0.2 * rand(gen, shape)
            params[f'{name}.bias'] = 0.1 * rand(gen, shape)
            params[f'{name}.running_mean'] = 0.1 * rand(gen, shape)
            params[f'{name}.running_var'] = 1 + 0.2 * rand(gen, shape).abs()
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 4
            params[name] = rand(gen, *shape, scale=(2 / fan_in) ** 0.5)
    return params


def mini_forward(P, x, keep):
    p = MINI['p']

    def bn(v, name):
        rm, rv = P[f'{name}.running_mean'].clone(), P[f'{name}.running_var'].clone()
        y = F.batch_norm(v, rm, rv, P[f'{name}.weight'], P[f'{name}.bias'], training=True, momentum=0.1, eps=1e-5)
        return y, rm, rv

    stats = {}

    def cbr(v, conv, bnname, **kw):
        y, rm, rv = bn(F.conv2d(v, P[f'{conv}.weight'], None, **kw), bnname)
        stats[f'{bnname}.running_mean'], stats[f'{bnname}.running_var'] = rm, rv
        return F.relu(y)

    h = cbr(x, 'conv1', 'bn1', stride=2, padding=1)
    body = cbr(h, 'conv2', 'bn2', padding=2, dilation=2)
    aux = F.interpolate(F.conv2d(body, P['aux.weight'], P['aux.bias']), size=x.shape[-2:], mode='bilinear', align_corners=False)
    b0 = cbr(body, 'b0', 'b0bn')
    b1 = cbr(body, 'b1', 'b1bn', padding=3, dilation=3)
    pooled = cbr(F.adaptive_avg_pool2d(body, 1), 'pool', 'poolbn')
    b2 = F.interpolate(pooled, size=body.shape[-2:], mode='bilinear', align_corners=False)
    cat = torch.cat([b0, b1, b2], 1)
    proj = cbr(cat, 'project', 'projectbn')
    dropped = proj * keep / (1 - p)
    out = F.interpolate(F.conv2d(dropped, P['head.weight'], P['head.bias']), size=x.shape[-2:], mode='bilinear', align_corners=False)
    return out, aux, stats


def make_mininet(fx, gen):
    N, H, W, C = MINI['batch'], MINI['height'], MINI['width'], MINI['classes']
    P = mini_params(gen)
    x = rand(gen, N, 3, H, W)
    labels = torch.randint(0, C, (N, H, W), generator=gen)
    labels[torch.rand(N, H, W, generator=gen) < 0.2] = IGNORE
    keep = (torch.rand(N, 4, H // 2, W // 2, generator=gen) >= MINI['p']).to(torch.float32)
    leaves = {k: v.clone().requires_grad_(not k.endswith(('running_mean', 'running_var'))) for k, v in P.items()}
    out, aux, stats = mini_forward(leaves, x, keep)
    loss = tv_loss(out, aux, labels)
    loss.backward()
    for k, v in P.items():
        add(fx, f'mininet/param/{k}', v)
        if leaves[k].grad is not None:
            add(fx, f'mininet/grad/{k}', leaves[k].grad)
    for k, v in stats.items():
        add(fx, f'mininet/new/{k}', v)
    add(fx, 'mininet/x', x)
    add(fx, 'mininet/out', out)
    fx.add('mininet/labels', labels.to(torch.uint8).numpy(), file='labels')
    fx.add('mininet/keep', keep.to(torch.uint8).numpy(), file='labels')
    fx.meta['results']['mininet'] = {'loss': float(loss), **MINI}


def make_mobilenet_ops(fx, gen):
    """MobileNetV3's kinds: depthwise (dilated, strided) convolutions, hard swish, hard sigmoid,
    sigmoid and the broadcast product of squeeze-and-excitation / LR-ASPP's gating. Drawn after the
    cases above so that theirs stay as they were."""
    for name, (xs, ws, stride, pad, dil, groups) in {
        'conv_dw_d2': ((2, 6, 11, 9), (6, 1, 5, 5), 1, 4, 2, 6),
        'conv_dw_s2': ((1, 4, 9, 10), (4, 1, 3, 3), 2, 1, 1, 4),
    }.items():
        inputs = {'x': rand(gen, *xs), 'weight': rand(gen, *ws, scale=0.3)}
        settings = {'stride': stride, 'pad': pad, 'dilation': dil, 'groups': groups, 'bias': False, 'out': ws[0], 'in': xs[1], 'kernel': ws[2]}
        op_case(fx, gen, name, settings, inputs,
                lambda x, weight, s=stride, p=pad, d=dil, g=groups: F.conv2d(x, weight, None, s, p, d, g))

    def away_from_kinks(x):
        # finite differences straddling the kinks at ±3 would not measure the derivative
        near = (x.abs() - 3).abs() < 0.05
        return torch.where(near, x + 0.1 * x.sign(), x)

    x = away_from_kinks(rand(gen, 2, 3, 5, 6, scale=3.0))
    op_case(fx, gen, 'hardswish', {}, {'x': x}, lambda x: F.hardswish(x))
    x = away_from_kinks(rand(gen, 2, 3, 5, 6, scale=3.0))
    op_case(fx, gen, 'hardsigmoid', {}, {'x': x}, lambda x: F.hardsigmoid(x))
    op_case(fx, gen, 'sigmoid', {}, {'x': rand(gen, 2, 3, 5, 6, scale=3.0)}, lambda x: torch.sigmoid(x))
    op_case(fx, gen, 'mul_gate', {}, {'a': rand(gen, 2, 4, 5, 6), 'b': rand(gen, 2, 4, 1, 1)}, lambda a, b: a * b)
    op_case(fx, gen, 'mul_gate_first', {}, {'a': rand(gen, 2, 4, 1, 1), 'b': rand(gen, 2, 4, 5, 6)}, lambda a, b: a * b)
    op_case(fx, gen, 'mul_same', {}, {'a': rand(gen, 1, 3, 4, 5), 'b': rand(gen, 1, 3, 4, 5)}, lambda a, b: a * b)


def make_grouped_upsamplers(fx, gen):
    """Per-class (grouped, groups = channels) transposed convs as the book's net uses above 32 classes
    (k = 2·stride, pad = stride / 2). Drawn after the cases above so that the cases before keep their values."""
    for name, (xs, stride) in {'convt_g2': ((2, 3, 5, 4), 2), 'convt_g8': ((1, 4, 3, 3), 8)}.items():
        C = xs[1]
        k, pad = 2 * stride, stride // 2
        inputs = {'x': rand(gen, *xs), 'weight': rand(gen, C, 1, k, k, scale=0.3), 'bias': rand(gen, C, scale=0.1)}
        settings = {'stride': stride, 'pad': pad, 'groups': C, 'bias': True, 'in': C, 'out': C, 'kernel': k}
        op_case(fx, gen, name, settings, inputs,
                lambda x, weight, bias, s=stride, p=pad, g=C: F.conv_transpose2d(x, weight, bias, s, p, 0, g))


def main():
    gen = torch.Generator().manual_seed(20261201)
    fx = Fixture('layers', 'new layer kinds (dilated/grouped conv, bilinear resize, global average pooling, torchvision loss) and a mini network of them: outputs and autograd gradients')
    fx.meta['settings'] = {'torch': torch.__version__, 'seed': 20261201}
    make_ops(fx, gen)
    make_mininet(fx, gen)
    make_mobilenet_ops(fx, gen)
    make_grouped_upsamplers(fx, gen)
    fx.write()


if __name__ == '__main__':
    main()

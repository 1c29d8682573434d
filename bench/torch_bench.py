#!/usr/bin/python3
"""PyTorch 1.13 reference timings for `npm run bench` (Debian's python3-torch; install libopenblas0-pthread first).

One measurement per process so peak RSS belongs to that measurement alone:
  /usr/bin/python3 bench/torch_bench.py forward --batch 1 --height 320 --width 480 --runs 7
  /usr/bin/python3 bench/torch_bench.py train --mode full|head --batch 4 ...
Prints one JSON line: {"engine": "pytorch", "task": ..., "median_ms": ..., "runs_ms": [...], "peak_rss_mb": ...}.
The network is the d2l book's FCN (torchvision resnet18 body, 1x1 conv, ConvTranspose k64 s32 p16), or
with --net one of torchvision's fcn_resnet50/101, deeplabv3_resnet50/101 (21 classes; the aux head in training only), trained
with torchvision's criterion (cross-entropy over the batch's valid pixels + 0.5 x aux).
"""
import argparse
import json
import resource
import statistics
import time

import torch
import torchvision
from torch import nn
from torch.nn import functional as F


def book_fcn(num_classes=21):
    body = torchvision.models.resnet18(weights=None)
    net = nn.Sequential(*list(body.children())[:-2])
    net.add_module('final_conv', nn.Conv2d(512, num_classes, kernel_size=1))
    net.add_module('transpose_conv', nn.ConvTranspose2d(num_classes, num_classes, kernel_size=64, padding=16, stride=32))
    return net


def torchvision_net(name, aux=True):
    from torchvision.models import segmentation
    # LR-ASPP has no aux head (its builder refuses aux_loss=True)
    aux_arg = {} if name.startswith('lraspp') else {'aux_loss': aux}
    return getattr(segmentation, name)(weights=None, weights_backbone=None, num_classes=21, **aux_arg)


def torchvision_loss(out, labels):
    loss = F.cross_entropy(out['out'], labels, ignore_index=255)
    return loss + 0.5 * F.cross_entropy(out['aux'], labels, ignore_index=255) if 'aux' in out else loss


def fx_int8(net, x):
    """PyTorch's own int8 path: FX graph-mode static quantisation, fbgemm's default qconfig (per-channel weights),
    or oneDNN's where this build lacks fbgemm (Debian's python3-torch 1.13 has qnnpack and onednn only)."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_fx, convert_fx
    engine = 'fbgemm' if 'fbgemm' in torch.backends.quantized.supported_engines else 'onednn'
    torch.backends.quantized.engine = engine
    # the transposed convolution stays float, as in ours (per-channel observers do not support it)
    qmap = get_default_qconfig_mapping(engine).set_object_type(nn.ConvTranspose2d, None)
    prepared = prepare_fx(net, qmap, example_inputs=(x,))
    with torch.no_grad():
        prepared(x)
    return convert_fx(prepared)


def loss_fn(logits, labels):
    # the book's reduction with VOC's ignore label: per image the mean over valid pixels, summed over the batch
    per_pixel = F.cross_entropy(logits, labels, reduction='none', ignore_index=255)
    valid = (labels != 255).float()
    return (per_pixel.sum((1, 2)) / valid.sum((1, 2)).clamp(min=1)).sum()


def main():
    p = argparse.ArgumentParser()
    p.add_argument('task', choices=['forward', 'train'])
    p.add_argument('--mode', choices=['full', 'head'], default='full')
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--height', type=int, default=320)
    p.add_argument('--width', type=int, default=480)
    p.add_argument('--runs', type=int, default=5)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--net', default='book', help="book, or torchvision's fcn_resnet50, deeplabv3_resnet50, ...")
    p.add_argument('--int8', action='store_true', help='forward only: FX graph-mode post-training int8 (fbgemm), calibrated on the input')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    book = a.net == 'book'
    # the forward runs without the aux head (ours computes only 'out'; torchvision would run aux too)
    net = book_fcn() if book else torchvision_net(a.net, aux=a.task == 'train')
    criterion = loss_fn if book else torchvision_loss
    x = torch.randn(a.batch, 3, a.height, a.width)
    times = []
    if a.task == 'forward':
        net.eval()
        if a.int8:
            net = fx_int8(net, x)
        with torch.no_grad():
            for i in range(a.warmup + a.runs):
                t = time.perf_counter()
                net(x)
                if i >= a.warmup:
                    times.append((time.perf_counter() - t) * 1000)
    else:
        labels = torch.randint(0, 21, (a.batch, a.height, a.width))
        labels[torch.rand(labels.shape) < 0.1] = 255
        if a.mode == 'head':
            for name, prm in net.named_parameters():
                prm.requires_grad = name.startswith('final_conv') or name.startswith('transpose_conv') or not name.startswith('backbone.') and not book
        params = [q for q in net.parameters() if q.requires_grad]
        opt = torch.optim.SGD(params, lr=0.001, weight_decay=1e-3)
        for i in range(a.warmup + a.runs):
            t = time.perf_counter()
            if a.mode == 'head':
                # frozen backbone: eval-mode BN, no graph through it (what --freeze-backbone does)
                net.train()
                for m in (list(net.children())[:-2] if book else [net.backbone]):
                    m.eval()
            else:
                net.train()
            opt.zero_grad()
            loss = criterion(net(x), labels)
            loss.backward()
            opt.step()
            if i >= a.warmup:
                times.append((time.perf_counter() - t) * 1000)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        'engine': f'pytorch-int8-{torch.backends.quantized.engine}' if a.int8 else 'pytorch', 'version': torch.__version__, 'task': a.task, 'net': a.net, 'mode': a.mode, 'batch': a.batch,
        'height': a.height, 'width': a.width, 'threads': a.threads,
        'median_ms': statistics.median(times), 'runs_ms': [round(t, 1) for t in times], 'peak_rss_mb': round(rss_mb, 1),
    }))


if __name__ == '__main__':
    main()

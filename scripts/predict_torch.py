#!/usr/bin/python3
"""The PyTorch side of `fcn predict` as a whole process: load a state_dict, segment each image, write masks.

  /usr/bin/python3 scripts/predict_torch.py --model STATE_DICT.pth --out DIR [--threads N] IMAGE...

The state_dict is the d2l book's FCN (nn.Sequential keys, images padded at the bottom/right to a
multiple of 32 with zeros after normalisation, logits cropped back) or one of torchvision's
segmentation networks (recognised from the keys as finetune_torch.py does; run at the image's own
size). Each image is read, normalised with ImageNet's mean/std, segmented one at a time (batch 1, as
fcn predict does) and written as DIR/<stem>.png, a VOC palette PNG of class ids. Prints one JSON line:
the seconds before the first mask was written and the whole process's wall time.
"""
import time

T0 = time.time()  # before the imports: they are part of the process's start-up

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import torch  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import finetune_torch as ft  # noqa: E402


def voc_palette():
    """VOC's 256-colour palette (the bit-interleaved colour map of the devkit)."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--model', required=True)
    p.add_argument('--out', required=True)
    p.add_argument('--threads', type=int, default=os.cpu_count())
    p.add_argument('images', nargs='+')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    sd = ft.load_state_dict(a.model)
    if any(k.startswith('backbone.') for k in sd):
        name = ft.recognise(sd)
        net = ft.torchvision_net(name, ft.class_count(sd, name), any(k.startswith('aux_classifier.') for k in sd))
        tv = True
    else:
        net = ft.book_fcn(sd['final_conv.weight'].shape[0])
        tv = False
    net.load_state_dict(sd, strict=False)
    net.eval()
    os.makedirs(a.out, exist_ok=True)
    palette = voc_palette()
    first = None
    with torch.no_grad():
        for path in a.images:
            with Image.open(path) as im:
                image = ft.np.asarray(im.convert('RGB'))
            mask = ft.predict(net, image, tv).to(torch.uint8).numpy()
            out = Image.fromarray(mask, mode='P')
            out.putpalette(palette)
            stem = os.path.splitext(os.path.basename(path))[0]
            tmp = os.path.join(a.out, f'.{stem}.png.tmp')
            out.save(tmp, format='PNG')
            os.replace(tmp, os.path.join(a.out, f'{stem}.png'))
            if first is None:
                first = time.time()
    print(json.dumps({'engine': 'pytorch', 'images': len(a.images), 'threads': a.threads,
                      'firstImageSeconds': round(first - T0, 3), 'wallSeconds': round(time.time() - T0, 3)}))


if __name__ == '__main__':
    main()

#!/usr/bin/python3
"""Reference rescaling for src/data/augment.ts: PyTorch's F.interpolate, bilinear (align_corners=False,
no antialias) for the image and 'nearest' for the mask, from a 7x9 image to several sizes.

    /usr/bin/python3 scripts/make_augment_fixtures.py    -> test/fixtures/augment/resize.json

The input is a formula (test/data-layouts.test.ts computes it too): pixel (y, x, c) = (37*y + 11*x + 80*c) % 256,
mask (y, x) = (3*y + x) % 5. Outputs are the float32 values before rounding (image) and the labels (mask).
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'augment')
H, W = 7, 9


def main():
    y, x = np.mgrid[0:H, 0:W]
    img = np.stack([(37 * y + 11 * x + 80 * c) % 256 for c in range(3)]).astype(np.float32)  # CHW
    mask = ((3 * y + x) % 5).astype(np.float32)
    cases = []
    for oh, ow in [(11, 13), (4, 5), (7, 9), (14, 18), (3, 17)]:
        t = F.interpolate(torch.from_numpy(img)[None], size=(oh, ow), mode='bilinear', align_corners=False)[0]
        m = F.interpolate(torch.from_numpy(mask)[None, None], size=(oh, ow), mode='nearest')[0, 0]
        cases.append({
            'height': oh, 'width': ow,
            'image': [round(float(v), 4) for v in t.permute(1, 2, 0).reshape(-1)],  # HWC
            'mask': [int(v) for v in m.reshape(-1)],
        })
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, 'resize.json'), 'w') as f:
        json.dump({'height': H, 'width': W, 'torch': torch.__version__, 'cases': cases}, f)
        f.write('\n')


if __name__ == '__main__':
    main()

#!/usr/bin/python3
"""SBD-style class masks (cls/<id>.mat) for the MAT-file reader's tests, written by scipy as SBD's are
laid out: one variable GTcls, a 1x1 struct with Boundaries (a 20x1 cell array of sparse boundary
maps), Segmentation (uint8 HxW class ids) and CategoriesPresent (the classes in the mask).

Run with Debian's Python (never needed to build or test the package):
    /usr/bin/python3 scripts/make_sbd_fixtures.py

Writes test/fixtures/sbd/: <id>.mat (zlib-compressed, as SBD's files are), plain_<id>.mat (the same,
uncompressed) and manifest.json with each mask's size and its expected row-major bytes (hex).
"""
import json
import os

import numpy as np
import scipy.io
import scipy.sparse

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'sbd')


def mask(h, w, seed):
    """Class ids 0..20 in blocks, so that a transposed (row/column-major) read is caught."""
    rng = np.random.default_rng(seed)
    m = np.zeros((h, w), np.uint8)
    for _ in range(3):
        y0, x0 = rng.integers(0, h - 2), rng.integers(0, w - 2)
        m[y0:y0 + rng.integers(2, h), x0:x0 + rng.integers(2, w)] = rng.integers(1, 21)
    m[0, w - 1] = 20  # a corner that differs under transposition
    return m


def gtcls(seg):
    boundaries = np.empty((20, 1), dtype=object)
    for c in range(20):
        edge = np.zeros(seg.shape, bool)
        cls = seg == c + 1
        edge[:, 1:] |= cls[:, 1:] != cls[:, :-1]
        edge[1:, :] |= cls[1:, :] != cls[:-1, :]
        boundaries[c, 0] = scipy.sparse.csc_matrix(edge & cls)
    present = np.unique(seg[seg > 0]).astype(np.uint8).reshape(-1, 1)
    return {'Boundaries': boundaries, 'Segmentation': seg, 'CategoriesPresent': present}


def main():
    os.makedirs(OUT, exist_ok=True)
    manifest = {}
    for i, (id_, h, w) in enumerate([('2008_000002', 7, 9), ('2008_000003', 10, 6), ('2011_000001', 8, 8)]):
        seg = mask(h, w, i)
        scipy.io.savemat(os.path.join(OUT, f'{id_}.mat'), {'GTcls': gtcls(seg)}, do_compression=True)
        if i == 0:
            scipy.io.savemat(os.path.join(OUT, f'plain_{id_}.mat'), {'GTcls': gtcls(seg)}, do_compression=False)
        back = scipy.io.loadmat(os.path.join(OUT, f'{id_}.mat'))['GTcls'][0, 0]['Segmentation']
        assert (back == seg).all() and back.dtype == np.uint8
        manifest[id_] = {'height': h, 'width': w, 'hex': seg.tobytes(order='C').hex()}
    with open(os.path.join(OUT, 'manifest.json'), 'w') as f:
        json.dump(manifest, f, indent=1)
        f.write('\n')


if __name__ == '__main__':
    main()

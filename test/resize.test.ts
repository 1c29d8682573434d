// torchvision's evaluation resize (fcn eval --resize): image and mask equal, byte for byte, what
// torchvision 0.14's F.resize does on PIL images (fixture: scripts/make_torchvision_fixtures.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readImage, readMask } from '../src/data/image.js';
import { resizeBilinearPil, resizeNearestPil, shorterSideSize } from '../src/data/resize.js';
import { countDifferent, loadFixture } from './helpers/fixtures.js';

const fx = loadFixture('torchvision');

test('shorter side to the size, the longer in proportion (truncated), as torchvision computes it', () => {
  assert.deepEqual(shorterSideSize(37, 53, 24), [24, 34]);
  assert.deepEqual(shorterSideSize(53, 37, 24), [34, 24]);
  assert.deepEqual(shorterSideSize(375, 500, 520), [520, 693]);
  assert.deepEqual(shorterSideSize(500, 500, 520), [520, 520]);
});

for (const size of [24, 80]) {
  test(`image (bilinear) and mask (nearest) resized to shorter side ${size} equal torchvision's on PIL`, async () => {
    const img = await readImage(fx.imagePath('a'));
    const mask = await readMask(fx.imagePath('mask_a'));
    const [h, w] = shorterSideSize(img.height, img.width, size);
    const ref = fx.u8(`resize/image_${size}`);
    assert.deepEqual(ref.shape, [h, w, 3]);
    const got = resizeBilinearPil(img, h, w);
    assert.equal(countDifferent(got.data, ref.data), 0);
    const refMask = fx.u8(`resize/mask_${size}`);
    const gotMask = resizeNearestPil(mask, h, w);
    assert.deepEqual([gotMask.height, gotMask.width], refMask.shape);
    assert.equal(countDifferent(gotMask.data, refMask.data), 0);
  });
}

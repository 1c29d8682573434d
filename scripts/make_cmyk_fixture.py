"""A CMYK JPEG without an ICC profile (what PIL writes for mode CMYK) and the RGB that PIL, hence
torchvision's loaders, decode it to: test/fixtures/cmyk/{cmyk.jpg, rgb.png}. Run with Debian's
/usr/bin/python3 (Pillow 9.4); byte-for-byte reproducible."""
import os
import numpy as np
from PIL import Image

OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'cmyk')
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(7)
# smooth CMYK ramps (JPEG keeps them) with K from 0 to 255, plus noise
y, x = np.mgrid[0:12, 0:16]
cmyk = np.stack([x * 16, y * 21, (x + y) * 9, (x * y) % 256], axis=-1) + rng.integers(0, 8, (12, 16, 4))
Image.fromarray(np.clip(cmyk, 0, 255).astype(np.uint8), 'CMYK').save(os.path.join(OUT, 'cmyk.jpg'), quality=95)
rgb = Image.open(os.path.join(OUT, 'cmyk.jpg')).convert('RGB')
rgb.save(os.path.join(OUT, 'rgb.png'))
print('wrote', OUT, rgb.size)

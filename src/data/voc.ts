// The PASCAL VOC label set: class names, the 21 colours the book uses, and the full 256-entry
// palette that VOC's palette PNGs carry (index 255 = void, drawn (224,224,192)).

export const VOC_CLASSES: readonly string[] = Object.freeze([
  'background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair',
  'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'potted plant', 'sheep', 'sofa',
  'train', 'tv/monitor',
]);

/** The label VOC uses for void / object boundaries; ignored by the loss and the metrics. */
export const IGNORE_INDEX = 255;

export type Rgb = readonly [number, number, number];

/** The VOC palette (the "bitget" colour map of the VOC devkit): 256 RGB triples. */
export const VOC_PALETTE: readonly Rgb[] = Object.freeze(
  Array.from({ length: 256 }, (_, i): Rgb => {
    let r = 0;
    let g = 0;
    let b = 0;
    let c = i;
    for (let j = 0; j < 8; j++) {
      r |= ((c >> 0) & 1) << (7 - j);
      g |= ((c >> 1) & 1) << (7 - j);
      b |= ((c >> 2) & 1) << (7 - j);
      c >>= 3;
    }
    return Object.freeze([r, g, b]) as Rgb;
  }),
);

/** The book's VOC_COLORMAP: the colours of the 21 classes. */
export const VOC_COLORMAP: readonly Rgb[] = Object.freeze(VOC_PALETTE.slice(0, VOC_CLASSES.length));

/** The palette as a flat 768-byte table (r,g,b per index), as PNG PLTE chunks store it. */
export function paletteBytes(palette: readonly Rgb[] = VOC_PALETTE): Uint8Array {
  const out = new Uint8Array(256 * 3);
  palette.forEach((c, i) => out.set(c, i * 3));
  return out;
}

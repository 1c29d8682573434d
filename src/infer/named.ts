// `--model NAME`: a bare published network name (fcn_resnet50, ...) stands for its downloaded file,
// found and verified by src/net (or a one-line error naming the `fcn download` that fetches it).
import { existsSync } from 'node:fs';
import { isPublishedWeights, resolveNamedWeights } from '../net/index.js';

/** Whether `source` names a published network or body rather than a file. */
export function isPublishedName(source: string): boolean {
  return isPublishedWeights(source) && !existsSync(source);
}

/** A model source as a file path: bare published names resolved to their downloaded file. */
export function modelPath(source: string): string {
  return isPublishedName(source) ? resolveNamedWeights(source) : source;
}

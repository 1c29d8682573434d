// `--model NAME`: a bare published network name (fcn_resnet50, ...) stands for its downloaded file.
// Stand-in for the resolver of src/net (which also verifies the file's digest) until that lands:
// the file is looked up under torchvision's name in the download folder and torch.hub's cache.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { defaultDownloadDir } from '../net/download.js';
import { FcnError } from '../util/errors.js';

/** torchvision's published files for the networks we run (https://download.pytorch.org/models/). */
const PUBLISHED_FILES: Readonly<Record<string, string>> = Object.freeze({
  fcn_resnet50: 'fcn_resnet50_coco-1167a1af.pth',
  fcn_resnet101: 'fcn_resnet101_coco-7ecb50ca.pth',
  deeplabv3_resnet50: 'deeplabv3_resnet50_coco-cd0a2569.pth',
  deeplabv3_resnet101: 'deeplabv3_resnet101_coco-586e9e4e.pth',
  resnet50: 'resnet50-0676ba61.pth',
  resnet101: 'resnet101-63fe2227.pth',
});

/** Whether `source` names a published network rather than a file. */
export function isPublishedName(source: string): boolean {
  return Object.prototype.hasOwnProperty.call(PUBLISHED_FILES, source) && !existsSync(source);
}

/** The downloaded file of a published network, or an FcnError saying which `fcn download` fetches it. */
export function resolveNamedWeights(name: string, dir?: string): string {
  const file = PUBLISHED_FILES[name];
  if (!file) throw new FcnError(`'${name}' is not a published network; known: ${Object.keys(PUBLISHED_FILES).join(', ')}`, 2);
  const torchHome = process.env['TORCH_HOME'] || join(process.env['XDG_CACHE_HOME'] || join(homedir(), '.cache'), 'torch');
  const folders = dir !== undefined ? [dir] : [defaultDownloadDir(), join(torchHome, 'hub', 'checkpoints')];
  for (const folder of folders) if (existsSync(join(folder, file))) return join(folder, file);
  throw new FcnError(`${name}: ${file} is not in ${folders.join(' or ')}; \`fcn download ${name}\` fetches it to ${join(folders[0]!, file)}`);
}

/** A model source as a file path: bare published names resolved to their downloaded file. */
export function modelPath(source: string): string {
  return isPublishedName(source) ? resolveNamedWeights(source) : source;
}

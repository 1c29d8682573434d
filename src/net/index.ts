// The network stage's surface: the published files and their downloads, the look-up of a bare
// network name, and the verified single-file download beneath them.
export {
  backboneHint,
  defaultDownloadDir,
  downloadPublished,
  downloadResnet18,
  downloadVoc2012,
  findCachedBackbone,
  resolveNamedWeights,
  type FetchOptions,
  type PublishedResult,
} from './download.js';
export { DownloadError, type DownloadFailure } from './http.js';
export { downloadFile, type DownloadOptions, type DownloadResult } from './transfer.js';
export { PUBLISHED, PUBLISHED_NAMES, isPublishedWeights, published, type Published, type PublishedKind } from './registry.js';

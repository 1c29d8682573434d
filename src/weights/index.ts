// The weights stage: our checkpoint format (safetensors + metadata), PyTorch .pth and safetensors
// readers, and the name maps from the book's and torchvision's layouts onto the declaration's names.
export * from './tensor.js';
export * from './safetensors.js';
export * from './zip.js';
export * from './pickle.js';
export * from './pth.js';
export * from './names.js';
export * from './checkpoint.js';
export * from './torchvision.js';

// onnxruntime-web is an optional peer dependency: only the page's "run in this browser" mode needs
// it. The server looks for it once at start; without it everything else works and the page says
// how to enable the mode instead of offering a switch that would fail.
import { createRequire } from 'node:module';
import { dirname } from 'node:path';

/** The package to install for the page's in-browser mode. */
export const ORT_WEB_PACKAGE = 'onnxruntime-web';
export const ORT_WEB_INSTALL = `npm install ${ORT_WEB_PACKAGE}`;

/**
 * The files the page loads (served under /ort/): the WebAssembly build with its binary, and the
 * WebGPU build with its own (loaded only when the user picks WebGPU).
 */
export const ORT_WEB_FILES: ReadonlySet<string> = new Set([
  'ort.wasm.min.mjs', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm',
  'ort.webgpu.min.mjs', 'ort-wasm-simd-threaded.asyncify.mjs', 'ort-wasm-simd-threaded.asyncify.wasm',
]);

/** Finds onnxruntime-web's dist folder, or undefined when the package is not installed. */
export type OrtWebResolver = () => string | undefined;

/** Resolves the installed package the way `import 'onnxruntime-web'` from this package would. */
export const resolveOrtWeb: OrtWebResolver = () => {
  try {
    return dirname(createRequire(import.meta.url).resolve(ORT_WEB_PACKAGE));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND') return undefined;
    throw err;
  }
};

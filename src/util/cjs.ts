// CommonJS packages (sharp, onnx-proto, onnxruntime-node) loaded with require rather than import:
// Node's ESM wrapper for a CommonJS module (its export lexer over the sources) costs 2-4x the load
// itself, and start-up pays it before the first image (sharp: 0.72 vs 0.29 s, onnx-proto 0.44 vs
// 0.12 s, best of 5 fresh processes each, load 17 on 2 cores).
import { createRequire } from 'node:module';

export const requireCjs = createRequire(import.meta.url);

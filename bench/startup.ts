// Where `fcn predict`'s start-up goes, phase by phase in one fresh process (bench/process.ts runs it):
//   node dist/bench/startup.js MODEL IMAGE [THREADS]
// Prints one JSON line of milliseconds: node's own boot (process start to this module's first line),
// loading the modules predict needs (ONNX Runtime, sharp, ...), reading the checkpoint, compiling the
// inference graph, creating the ONNX Runtime session (the graph's optimisation included), and the first
// and second image (decode, normalise, run, argmax; the first also pays ORT's first-run allocations).
const boot = performance.now();
const [model, image, threadsArg] = process.argv.slice(2);
if (!model || !image) {
  process.stderr.write('usage: node dist/bench/startup.js MODEL IMAGE [THREADS]\n');
  process.exit(2);
}
const threads = threadsArg ? Number(threadsArg) : undefined;
const lap = (() => { let t = performance.now(); return () => { const now = performance.now(); const d = now - t; t = now; return Math.round(d); }; })();
const { loadCheckpoint } = await import('../src/weights/checkpoint.js');
const { compileInference } = await import('../src/graph/inference.js');
const { Session } = await import('../src/engine/session.js');
const { SegmentationModel } = await import('../src/infer/model.js');
await import('sharp');
const modules = lap();
const ckpt = await loadCheckpoint(model);
const read = lap();
const bytes = compileInference(ckpt.arch, ckpt.weights);
const compile = lap();
const session = await Session.create(bytes, { threads });
const sessionMs = lap();
await session.dispose();
// the model as predict makes it (compiles again: timed above, subtracted here)
const m = await SegmentationModel.fromCheckpoint(ckpt, { threads });
const modelMs = lap();
await m.segment(image);
const first = lap();
await m.segment(image);
const second = lap();
await m.dispose();
process.stdout.write(JSON.stringify({
  bootMs: Math.round(boot), modulesMs: modules, readCheckpointMs: read, compileGraphMs: compile, createSessionMs: sessionMs,
  modelAgainMs: modelMs, firstImageMs: first, secondImageMs: second,
}) + '\n');

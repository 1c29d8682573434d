// Where `fcn predict`'s and `fcn train`'s start-up goes, phase by phase in one fresh process
// (bench/process.ts runs it):
//   node dist/bench/startup.js MODEL IMAGE [THREADS]
//   node dist/bench/startup.js train DATA [THREADS] [--freeze-backbone]
// Prints one JSON line of milliseconds. predict: node's own boot (process start to this module's first
// line), loading the modules predict needs (ONNX Runtime, sharp, ...), reading the checkpoint, compiling
// the inference graph, creating the ONNX Runtime session (the graph's optimisation included), and the
// first and second image (decode, normalise, run, argmax; the first also pays ORT's first-run allocations).
// train (the book's FCN from random weights, batch 4, crop 320x480, val scored on 8 images, as
// bench/process.ts's train section): when the first step is done (from the process's start), boot, modules, opening the data and initialising the weights,
// listing the usable examples, compiling the step graph, creating its session (ORT's optimisation;
// compiled again, subtracted), the first and second step (the first pays the first-run allocations),
// copying the weights out, compiling and creating the val session, scoring 8 val images, writing
// a checkpoint's bytes; then the weights' initialisation again on one thread (initParameters) and on
// two (initParametersParallel, what `fcn train` does), for comparison.
const boot = performance.now();
const lap = (() => { let t = performance.now(); return () => { const now = performance.now(); const d = now - t; t = now; return Math.round(d); }; })();
const argv = process.argv.slice(2);

async function predictPhases(model: string, image: string, threads: number | undefined): Promise<Record<string, number>> {
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
  return {
    bootMs: Math.round(boot), modulesMs: modules, readCheckpointMs: read, compileGraphMs: compile, createSessionMs: sessionMs,
    modelAgainMs: modelMs, firstImageMs: first, secondImageMs: second,
  };
}

async function trainPhases(data: string, threads: number | undefined, head: boolean): Promise<Record<string, number>> {
  const { openDataset } = await import('../src/data/layouts.js');
  const { prepareSplit, epochBatches } = await import('../src/data/batches.js');
  const { Rng } = await import('../src/data/rng.js');
  const { fcnResNet18 } = await import('../src/model/fcn.js');
  const { initParameters, seededRandom } = await import('../src/model/params.js');
  const { initParametersParallel } = await import('../src/train/initworker.js');
  const { compileTrainStep } = await import('../src/graph/train.js');
  const { TrainStep } = await import('../src/train/step.js');
  const { SegmentationModel } = await import('../src/infer/model.js');
  const { evaluate } = await import('../src/infer/evaluate.js');
  const { encodeCheckpoint } = await import('../src/weights/checkpoint.js');
  const { defaultCard } = await import('../src/model/card.js');
  const { normalizeBatch } = await import('../src/infer/preprocess.js');
  await import('sharp');
  const modules = lap();
  const trainDs = await openDataset(data, 'train');
  const valDs = await openDataset(data, 'val', { defaultLabels: trainDs.labels });
  const arch = fcnResNet18({ numClasses: trainDs.labels.classes.length });
  const weights = await initParametersParallel(arch, 0);
  const open = lap();
  const { ids } = await prepareSplit(trainDs, [320, 480], 'filter');
  const split = lap();
  const opts = { mode: head ? 'head' as const : 'full' as const, batch: 4, height: 320, width: 480, weightDecay: 1e-3, momentum: 0, optimizer: 'sgd' as const, threads };
  compileTrainStep(arch, opts, head ? weights : undefined);
  const compileStep = lap();
  const step = await TrainStep.create(arch, weights, opts);
  const stepAgain = lap();
  const card = defaultCard(arch.numClasses);
  const batches = epochBatches(trainDs, ids, { batchSize: 4, crop: [320, 480], shuffle: true, rng: new Rng(0), normalize: (im) => normalizeBatch(im, card.normalization) });
  const b1 = (await batches.next()).value!;
  const firstBatch = lap();
  await step.run(b1.images, b1.labels, 1e-3);
  const firstStep = lap();
  // performance.now() counts from the process's start
  const firstStepDone = Math.round(performance.now());
  const b2 = (await batches.next()).value!;
  await step.run(b2.images, b2.labels, 1e-3);
  const secondStep = lap();
  await batches.return(undefined);
  const trained = step.weights();
  const copyWeights = lap();
  await step.dispose();
  const model = await SegmentationModel.fromWeights(arch, trained, card, { threads });
  const valModel = lap();
  await evaluate(model, valDs, { limit: 8 });
  const val8 = lap();
  await model.dispose();
  encodeCheckpoint({ arch, weights: trained, ...card, metadata: {}, extra: new Map() });
  const encode = lap();
  // the weights' initialisation again, on one thread and on two (as above), for comparison
  initParameters(arch, seededRandom(0));
  const initOneThread = lap();
  await initParametersParallel(arch, 0);
  const initTwoThreads = lap();
  return {
    firstStepDoneAtMs: firstStepDone,
    bootMs: Math.round(boot), modulesMs: modules, openAndInitMs: open, listSplitMs: split, compileStepMs: compileStep,
    stepSessionMs: stepAgain - compileStep, firstBatchMs: firstBatch, firstStepMs: firstStep, secondStepWithBatchMs: secondStep,
    copyWeightsMs: copyWeights, valModelMs: valModel, val8Ms: val8, encodeCheckpointMs: encode,
    initOneThreadMs: initOneThread, initTwoThreadsMs: initTwoThreads,
  };
}

if (argv[0] === 'train') {
  const [, data, threadsArg] = argv;
  if (!data) {
    process.stderr.write('usage: node dist/bench/startup.js train DATA [THREADS] [--freeze-backbone]\n');
    process.exit(2);
  }
  const threads = threadsArg && !threadsArg.startsWith('--') ? Number(threadsArg) : undefined;
  process.stdout.write(JSON.stringify(await trainPhases(data, threads, argv.includes('--freeze-backbone'))) + '\n');
} else {
  const [model, image, threadsArg] = argv;
  if (!model || !image) {
    process.stderr.write('usage: node dist/bench/startup.js MODEL IMAGE [THREADS]\n       node dist/bench/startup.js train DATA [THREADS] [--freeze-backbone]\n');
    process.exit(2);
  }
  process.stdout.write(JSON.stringify(await predictPhases(model, image, threadsArg ? Number(threadsArg) : undefined)) + '\n');
}

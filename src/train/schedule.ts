// The learning-rate schedule: the book's constant rate, or torchvision's segmentation recipe
// (polynomial decay to 0 over the planned steps, power 0.9).

export type LrSchedule = 'constant' | 'poly';
export const LR_SCHEDULES: readonly LrSchedule[] = ['constant', 'poly'];

/** The learning rate of global step `step` (0-based) of `total` under `schedule`: lr·(1 - step/total)^0.9 for 'poly'. */
export function scheduledLr(lr: number, schedule: LrSchedule, step: number, total: number): number {
  return schedule === 'poly' ? lr * Math.pow(Math.max(0, 1 - step / total), 0.9) : lr;
}

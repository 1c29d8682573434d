// PyTorch's initialisers, drawn from a uniform [0, 1) source (model/params.ts's seeded generator).

/** A standard normal draw (Box-Muller; 1 − u keeps log away from 0). */
export function gaussian(random: () => number): number {
  const u = 1 - random();
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** n values uniform in (−bound, bound): kaiming_uniform_(a=√5) and the default bias both give bound 1/√fan_in. */
export function uniform(n: number, bound: number, random: () => number): Float32Array {
  const t = new Float32Array(n);
  for (let i = 0; i < n; i++) t[i] = (random() * 2 - 1) * bound;
  return t;
}

/** n values N(0, std²): kaiming_normal_(mode='fan_out', nonlinearity='relu') has std √(2/fan_out). */
export function normal(n: number, std: number, random: () => number): Float32Array {
  const t = new Float32Array(n);
  for (let i = 0; i < n; i++) t[i] = gaussian(random) * std;
  return t;
}

export const filled = (n: number, value: number) => (): Float32Array => new Float32Array(n).fill(value);

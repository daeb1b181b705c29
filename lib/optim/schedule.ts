/**
 * Learning-rate schedules as plain functions from the step index (0-based: the update about to be taken) to
 * a factor of each parameter group's initial learning rate. `warmupCosine` is the schedule of the Mamba
 * paper's training recipe: linear warmup, then cosine decay down to `minRatio` of the peak.
 *
 * @example
 * ```ts
 * const schedule = warmupCosine({ warmupSteps: 100, totalSteps: 2000, minRatio: 0.1 });
 * for (const g of opt.paramGroups) g.lr = g.initialLr * schedule(step);
 * ```
 */
import { describeValue } from '../dtype';
import { ArgumentError } from '../errors';

/** Step index (0-based) → factor of the initial learning rate. */
export type Schedule = (step: number) => number;

/** Options of `warmupCosine`. */
export interface WarmupCosineOptions {
  /** Steps of linear warmup: step s < warmupSteps gets (s + 1) / warmupSteps. Default 0. */
  warmupSteps?: number;
  /** The step at which the cosine reaches its minimum (later steps stay there). */
  totalSteps: number;
  /** The final factor (the minimum learning rate over the peak). Default 0.1. */
  minRatio?: number;
}

/** Linear warmup to 1, then a half cosine from 1 down to `minRatio` at `totalSteps`. */
export function warmupCosine(options: WarmupCosineOptions): Schedule {
  const fn = 'warmupCosine';
  if (options === null || typeof options !== 'object') throw new ArgumentError(`${fn}: expected an options object but received ${describeValue(options)}`, { fn, arg: 'options' });
  const warmup = options.warmupSteps ?? 0;
  const total = options.totalSteps;
  const minRatio = options.minRatio ?? 0.1;
  if (!Number.isInteger(warmup) || warmup < 0) throw new ArgumentError(`${fn}: expected an integer >= 0 for option 'warmupSteps' but received ${describeValue(warmup)}`, { fn, arg: 'warmupSteps' });
  if (!Number.isInteger(total) || total < 1 || total < warmup)
    throw new ArgumentError(`${fn}: expected an integer >= max(1, warmupSteps) for option 'totalSteps' but received ${describeValue(total)}`, { fn, arg: 'totalSteps' });
  if (typeof minRatio !== 'number' || !(minRatio >= 0 && minRatio <= 1))
    throw new ArgumentError(`${fn}: expected a number in [0, 1] for option 'minRatio' but received ${describeValue(minRatio)}`, { fn, arg: 'minRatio' });
  return (step: number): number => {
    if (step < warmup) return (step + 1) / warmup;
    const progress = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
    return minRatio + (1 - minRatio) * 0.5 * (1 + Math.cos(Math.PI * progress));
  };
}

/** A constant factor of 1 (no schedule). */
export const constantSchedule: Schedule = () => 1;

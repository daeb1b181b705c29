// AdamW against a float64 JS transcription of torch.optim.AdamW (_single_tensor_adamw): several steps with
// weight decay, bias correction, betas, grad scale, 16-bit gradients, parameter groups, parameters without
// gradients; the state dict round trip (bitwise continuation); paramGroupsForMamba; bad input; and, inside
// describeCuda, the CUDA kernel against the CPU one (written without a GPU: run on the GPU machine).
import { ArgumentError, DType, Device, DTypeError, ShapeError, Tensor, tensor, tidy, zeros } from '../../lib';
import { AdamW, AdamWOptions, isNoDecay, paramGroupsForMamba } from '../../lib/optim';
import { describeCuda, expectClose, expectEqualArrays, expectTypedError, rng } from '../setup';

interface RefState {
  p: Float64Array;
  m: Float64Array;
  v: Float64Array;
  step: number;
}

/** One torch.optim.AdamW step in float64 (amsgrad off). `g` are the gradient values as the kernel reads them. */
function refStep(s: RefState, g: ArrayLike<number>, o: Required<AdamWOptions>, scale = 1): void {
  const [b1, b2] = o.betas;
  s.step += 1;
  const bc1 = 1 - b1 ** s.step;
  const bc2 = 1 - b2 ** s.step;
  const stepSize = o.lr / bc1;
  for (let i = 0; i < s.p.length; i++) {
    const gi = g[i] * scale;
    s.p[i] *= 1 - o.lr * o.weightDecay;
    s.m[i] = s.m[i] + (1 - b1) * (gi - s.m[i]);
    s.v[i] = s.v[i] * b2 + (1 - b2) * gi * gi;
    const denom = Math.sqrt(s.v[i]) / Math.sqrt(bc2) + o.eps;
    s.p[i] -= (stepSize * s.m[i]) / denom;
  }
}

function normal(r: () => number, n: number, scale = 1): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  return out;
}

function param(values: ArrayLike<number>, shape: number[], device: Device = 'cpu'): Tensor {
  return tidy(() => tensor(Float32Array.from(values), shape, { device })).requiresGrad_();
}

/** Sets p.grad to `values` in `dtype`; returns the values the kernel will read (rounded to that dtype). */
function setGrad(p: Tensor, values: ArrayLike<number>, dtype: DType = 'float32'): Float32Array {
  const g = tensor(Float32Array.from(values), p.shape, { dtype, device: p.device });
  p.setGrad(g);
  return tidy(() => g.to('cpu').cast('float32').dataSync() as Float32Array);
}

function readValues(t: Tensor): Float32Array {
  return tidy(() => t.to('cpu').dataSync() as Float32Array);
}

const FULL: Required<AdamWOptions> = { lr: 1e-2, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.1 };

function runAgainstReference(options: Required<AdamWOptions>, n: number, steps: number, gradDtype: DType, scale: number, seed: number): void {
  const r = rng(seed);
  const init = normal(r, n);
  const p = param(init, [n]);
  const ref: RefState = { p: Float64Array.from(Float32Array.from(init)), m: new Float64Array(n), v: new Float64Array(n), step: 0 };
  const opt = new AdamW([p], options);
  try {
    for (let s = 0; s < steps; s++) {
      const read = setGrad(p, normal(r, n, 0.5 + s), gradDtype);
      opt.step({ gradScale: scale });
      refStep(ref, read, options, scale);
      opt.zeroGrad();
      expectClose(readValues(p), ref.p, 2e-5, 2e-6);
    }
  } finally {
    opt.dispose();
    p.dispose();
  }
}

describe('AdamW', () => {
  test('matches torch.optim.AdamW in float64 over several steps (weight decay, bias correction)', () => {
    runAgainstReference(FULL, 1000, 6, 'float32', 1, 1);
    runAgainstReference({ ...FULL, weightDecay: 0 }, 37, 5, 'float32', 1, 2);
    runAgainstReference({ lr: 3e-3, betas: [0.8, 0.95], eps: 1e-6, weightDecay: 0.5 }, 129, 5, 'float32', 1, 3);
    runAgainstReference({ ...FULL, betas: [0.3, 0.5] }, 64, 4, 'float32', 1, 4);
  });

  test('grad scale is applied before the moments (clipping folded into the step)', () => {
    runAgainstReference(FULL, 300, 4, 'float32', 0.25, 5);
  });

  test.each(['bfloat16', 'float16'] as const)('%s gradients on float32 master weights', (dtype) => {
    runAgainstReference(FULL, 257, 4, dtype, 1, 6);
  });

  test('the first step moves each weight by about lr (bias correction)', () => {
    const p = param([1, -2, 3], [3]);
    const opt = new AdamW([p], { lr: 0.1, weightDecay: 0 });
    setGrad(p, [5, -0.001, 1e3]);
    opt.step();
    expectClose(readValues(p), [0.9, -1.9, 2.9], 1e-5, 1e-5);
    opt.dispose();
    p.dispose();
  });

  test('updates the parameter tensor in place; parameters without a gradient are skipped', () => {
    const a = param([1, 2], [2]);
    const b = param([3, 4], [2]);
    const opt = new AdamW([a, b], FULL);
    setGrad(a, [1, 1]);
    opt.step();
    expect(readValues(a)[0]).not.toBe(1);
    expectEqualArrays(readValues(b), [3, 4]);
    expect(opt.stateDict().state[1]).toBeNull();
    opt.dispose();
    a.dispose();
    b.dispose();
  });

  test('parameter groups keep their own options; zeroGrad drops the gradients', () => {
    const a = param([1, 1], [2]);
    const b = param([1, 1], [2]);
    const opt = new AdamW([{ params: [a] }, { params: [b], weightDecay: 0, lr: 0 }], { lr: 0.1, weightDecay: 0.5 });
    setGrad(a, [0, 0]);
    setGrad(b, [1, 1]);
    opt.step();
    expectClose(readValues(a), [0.95, 0.95], 1e-6, 0);
    expectEqualArrays(readValues(b), [1, 1]);
    opt.zeroGrad();
    expect(a.grad).toBeNull();
    expect(b.grad).toBeNull();
    opt.dispose();
    a.dispose();
    b.dispose();
  });

  test('stateDict / loadStateDict continue bitwise', () => {
    const r = rng(9);
    const init = normal(r, 50);
    const grads = Array.from({ length: 6 }, () => normal(r, 50));
    const a = param(init, [5, 10]);
    const b = param(init, [5, 10]);
    const optA = new AdamW([a], FULL);
    for (let s = 0; s < 3; s++) {
      setGrad(a, grads[s]);
      optA.step();
      optA.zeroGrad();
    }
    // b takes a's values through the host, as a checkpoint would.
    const bb = param(readValues(a), [5, 10]);
    const sd = optA.stateDict();
    const optB = new AdamW([bb], { lr: 5 });
    optB.loadStateDict(sd);
    expect(optB.paramGroups[0].lr).toBe(FULL.lr);
    for (let s = 3; s < 6; s++) {
      setGrad(a, grads[s]);
      setGrad(bb, grads[s]);
      optA.step();
      optB.step();
    }
    expectEqualArrays(readValues(bb), readValues(a));
    const sa = optA.stateDict().state[0]!;
    const sb = optB.stateDict().state[0]!;
    expect(sb.step).toBe(6);
    expectEqualArrays(sb.expAvg, sa.expAvg);
    expectEqualArrays(sb.expAvgSq, sa.expAvgSq);
    const c = param([1], [1]);
    expectTypedError(() => new AdamW([c]).loadStateDict(sd), ShapeError, 'AdamW.loadStateDict', 'stateDict');
    c.dispose();
    optA.dispose();
    optB.dispose();
    for (const t of [a, b, bb]) t.dispose();
  });

  test('paramGroupsForMamba: no decay for biases, norms, A_log and D', () => {
    const names = [
      'backbone.embeddings.weight',
      'backbone.layers.0.norm.weight',
      'backbone.layers.0.mixer.in_proj.weight',
      'backbone.layers.0.mixer.conv1d.weight',
      'backbone.layers.0.mixer.conv1d.bias',
      'backbone.layers.0.mixer.dt_proj.bias',
      'backbone.layers.0.mixer.A_log',
      'backbone.layers.0.mixer.D',
      'backbone.layers.0.mixer.out_proj.weight',
      'backbone.norm_f.weight',
    ];
    const ts: Tensor[] = names.map(() => zeros([1]));
    const groups = paramGroupsForMamba(names.map((n, i) => [n, ts[i]] as const));
    expect(groups.map((g) => g.name)).toEqual(['decay', 'no_decay']);
    expect(groups[1].weightDecay).toBe(0);
    const decayNames = groups[0].params.map((t) => names[ts.indexOf(t)]);
    expect(decayNames).toEqual(['backbone.embeddings.weight', 'backbone.layers.0.mixer.in_proj.weight', 'backbone.layers.0.mixer.conv1d.weight', 'backbone.layers.0.mixer.out_proj.weight']);
    expect(isNoDecay('layers.0.mixer.Dense.weight')).toBe(false);
    ts.forEach((t) => t.dispose());
  });

  test('bad input gives typed errors', () => {
    const p = param([1, 2], [2]);
    const half = tidy(() => tensor([1, 2], [2], { dtype: 'bfloat16' }));
    expectTypedError(() => new AdamW([half]), DTypeError, 'AdamW', 'params');
    expectTypedError(() => new AdamW([]), ArgumentError, 'AdamW', 'params');
    expectTypedError(() => new AdamW([p, p]), ArgumentError, 'AdamW', 'params');
    expectTypedError(() => new AdamW([p], { lr: -1 }), ArgumentError, 'AdamW', 'lr');
    expectTypedError(() => new AdamW([p], { lr: NaN }), ArgumentError, 'AdamW', 'lr');
    expectTypedError(() => new AdamW([p], { betas: [1, 0.9] }), ArgumentError, 'AdamW', 'betas');
    expectTypedError(() => new AdamW([p], { weightDecay: -0.1 }), ArgumentError, 'AdamW', 'weightDecay');
    const opt = new AdamW([p]);
    setGrad(p, [1, 1]);
    expectTypedError(() => opt.step({ gradScale: Infinity }), ArgumentError, 'AdamW.step', 'gradScale');
    p.setGrad(tensor([1, 2, 3], [3]));
    expectTypedError(() => opt.step(), ShapeError, 'AdamW.step', 'grad');
    p.setGrad(tensor([1, 2], [2], { dtype: 'int32' }));
    expectTypedError(() => opt.step(), DTypeError, 'adamwStep', 'grad');
    opt.dispose();
    p.dispose();
    half.dispose();
  });
});

describeCuda('AdamW on CUDA', () => {
  test.each(['float32', 'bfloat16', 'float16'] as const)('the CUDA step matches the CPU step (%s gradients)', (dtype) => {
    for (const n of [1, 1000, 257 * 1024 + 3]) {
      const r = rng(n);
      const init = normal(r, n);
      const pc = param(init, [n]);
      const pg = param(init, [n], 'cuda');
      const oc = new AdamW([pc], FULL);
      const og = new AdamW([pg], FULL);
      for (let s = 0; s < 4; s++) {
        const g = normal(r, n, 1 + s);
        setGrad(pc, g, dtype);
        setGrad(pg, g, dtype);
        oc.step({ gradScale: 0.5 });
        og.step({ gradScale: 0.5 });
      }
      // Shared per-element code with explicitly rounded device arithmetic: expected to agree bitwise; the
      // tolerance only keeps a one-ulp surprise from hiding the rest of the report.
      expectClose(readValues(pg), readValues(pc), 1e-6, 1e-7);
      expectClose(og.stateDict().state[0]!.expAvgSq, oc.stateDict().state[0]!.expAvgSq, 1e-6, 1e-12);
      oc.dispose();
      og.dispose();
      pc.dispose();
      pg.dispose();
    }
  });

  test('a CUDA parameter with a CPU gradient is refused', () => {
    const p = param([1, 2], [2], 'cuda');
    const opt = new AdamW([p]);
    p.setGrad(tensor([1, 2], [2]));
    expect(() => opt.step()).toThrow();
    opt.dispose();
    p.dispose();
  });
});

/**
 * The Module base class and the basic layers: parameter discovery by attribute path (children, arrays,
 * tied tensors), stateDict / loadStateDict (round trip, strict errors, aliases), replaceParameter, to(),
 * train/eval, forward hooks, dispose; Linear / Embedding / RMSNorm / Conv1d shapes and PyTorch-default
 * init ranges.
 */
import { ArgumentError, DTypeError, ShapeError, Tensor, keep, nn, noGrad, ops, randn, tensor, tidy } from '../../lib';
import { expectClose, expectTypedError } from '../setup';

class Pair extends nn.Module {
  a: nn.Linear;
  blocks: nn.Linear[];
  scale: Tensor;
  head: nn.Linear;
  note = 'not a parameter';

  constructor() {
    super();
    this.a = new nn.Linear(3, 4, { seed: 1 });
    this.blocks = [new nn.Linear(4, 4, { bias: false, seed: 2 }), new nn.Linear(4, 4, { bias: false, seed: 3 })];
    this.scale = nn.parameter(randn([4], { seed: 4 }));
    // Tied to blocks.0.weight: one parameter, named by its first path.
    this.head = new nn.Linear(4, 4, { bias: false, weight: this.blocks[0].weight });
  }

  forward(x: Tensor): Tensor {
    return tidy(() => ops.mul(this.head.forward(this.blocks[1].forward(this.blocks[0].forward(this.a.forward(x)))), this.scale));
  }
}

const shapeOf = (m: nn.Module) => Object.fromEntries(m.namedParameters().map(([n, t]) => [n, t.shape]));

describe('Module', () => {
  test('parameters are named by attribute path; arrays are numbered; tied tensors appear once', () => {
    const m = new Pair();
    expect(shapeOf(m)).toEqual({
      'a.weight': [4, 3],
      'a.bias': [4],
      'blocks.0.weight': [4, 4],
      'blocks.1.weight': [4, 4],
      scale: [4],
    });
    expect(m.parameters().every((p) => p.requiresGrad)).toBe(true);
    expect(m.numParameters()).toBe(12 + 4 + 16 + 16 + 4);
    expect(m.namedModules().map(([n]) => n)).toEqual(['', 'a', 'blocks.0', 'blocks.1', 'head']);
    m.dispose();
  });

  test('stateDict / loadStateDict round trip into a differently initialised module', () => {
    const m1 = new Pair();
    const m2 = new Pair();
    m2.replaceParameter('a.weight', randn([4, 3], { seed: 99 }));
    const x = randn([2, 3], { seed: 5 });
    const sd = m1.stateDict();
    expect(Object.keys(sd)).toEqual(['a.weight', 'a.bias', 'blocks.0.weight', 'blocks.1.weight', 'scale']);
    const r = m2.loadStateDict(sd);
    expect(r).toEqual({ missingKeys: [], unexpectedKeys: [] });
    // The tie survives: head still reads blocks.0.weight.
    expect(m2.head.weight).toBe(m2.blocks[0].weight);
    expect(m2.parameters().every((p) => p.requiresGrad)).toBe(true);
    // Forwards without backward run under noGrad: a recorded graph holds its saved tensors until backward.
    const [y1, y2] = noGrad(() => [m1.forward(x), m2.forward(x)]);
    expectClose(y2.dataSync(), y1.dataSync(), 0, 0);
    // stateDict gives the module's own tensors; the loaded module holds handles of its own.
    expect(sd['a.weight']).toBe(m1.a.weight);
    m1.dispose();
    expect(m2.parameters().every((p) => !p.isDisposed)).toBe(true);
    [x, y1, y2].forEach((t) => t.dispose());
    m2.dispose();
  });

  test('loadStateDict: typed errors for missing, unexpected and mis-shaped keys; nothing changes on error', () => {
    const m = new Pair();
    const sd = m.stateDict();
    const before = m.parameters();
    const missing = { ...sd };
    delete (missing as Record<string, Tensor>).scale;
    expectTypedError(() => m.loadStateDict(missing), ArgumentError, 'loadStateDict', 'stateDict');
    const extra = tensor([1]);
    expectTypedError(() => m.loadStateDict({ ...sd, 'b.weight': extra }), ArgumentError, 'loadStateDict', 'stateDict');
    const bad = randn([4, 4]);
    expectTypedError(() => m.loadStateDict({ ...sd, 'a.weight': bad }), ShapeError, 'loadStateDict', 'a.weight');
    expectTypedError(() => m.loadStateDict(new Map([['a.weight', bad]]), { strict: false }), ShapeError, 'loadStateDict', 'a.weight');
    const ints = tensor([1, 2, 3, 4], [4], { dtype: 'int32' });
    expectTypedError(() => m.loadStateDict({ ...sd, scale: ints }), DTypeError, 'loadStateDict', 'scale');
    expect(m.parameters()).toEqual(before);
    // Not strict: the lists are returned and the matching keys loaded.
    const r = m.loadStateDict({ scale: sd.scale, 'b.weight': extra }, { strict: false });
    expect(r.unexpectedKeys).toEqual(['b.weight']);
    expect(r.missingKeys).toEqual(['a.weight', 'a.bias', 'blocks.0.weight', 'blocks.1.weight']);
    // A tied alias is accepted under its own name when the shape fits.
    const r2 = m.loadStateDict({ 'head.weight': sd['blocks.0.weight'] }, { strict: false });
    expect(r2.unexpectedKeys).toEqual([]);
    expect(r2.missingKeys).not.toContain('blocks.0.weight');
    [extra, bad, ints].forEach((t) => t.dispose());
    m.dispose();
  });

  test('loadStateDict converts dtype to the parameter dtype', () => {
    const m = new nn.Linear(2, 2, { bias: false });
    const w = tensor([1, 2, 3, 4], [2, 2], { dtype: 'bfloat16' });
    m.loadStateDict({ weight: w });
    expect(m.weight.dtype).toBe('float32');
    expect(Array.from(m.weight.dataSync())).toEqual([1, 2, 3, 4]);
    w.dispose();
    m.dispose();
  });

  test('to(dtype) converts parameters and keeps ties; to(device) is a no-op on the same device', () => {
    const m = new Pair();
    m.to('bfloat16');
    expect(m.parameters().every((p) => p.dtype === 'bfloat16' && p.requiresGrad)).toBe(true);
    expect(m.head.weight).toBe(m.blocks[0].weight);
    m.to('cpu').to('float32');
    expect(m.parameters().every((p) => p.dtype === 'float32')).toBe(true);
    expectTypedError(() => m.to('int32'), DTypeError, 'to', 'target');
    m.dispose();
  });

  test('train / eval set the flag on every module', () => {
    const m = new Pair();
    expect(m.training).toBe(true);
    m.eval();
    expect(m.namedModules().every(([, c]) => !c.training)).toBe(true);
    m.train();
    expect(m.blocks[1].training).toBe(true);
    m.dispose();
  });

  test('forward hooks see module, inputs and output; a returned value replaces the output; remove()', () => {
    const m = new Pair();
    const x = randn([2, 3], { seed: 1 });
    const seen: string[] = [];
    const h1 = m.blocks[1].registerForwardHook((mod, inputs, out) => {
      expect(mod).toBe(m.blocks[1]);
      expect(inputs[0]).toBeInstanceOf(Tensor);
      seen.push(`blocks.1 ${(out as Tensor).shape}`);
    });
    let kept: Tensor | null = null;
    const h2 = m.registerForwardHook((_mod, _inputs, out) => {
      kept = keep((out as Tensor).detach());
      return ops.mul(out as Tensor, 0);
    });
    const y = noGrad(() => m.forward(x));
    expect(seen).toEqual(['blocks.1 2,4']);
    expect(Array.from(y.dataSync()).every((v) => v === 0)).toBe(true);
    expect((kept as unknown as Tensor).shape).toEqual([2, 4]);
    h1.remove();
    h2.remove();
    h2.remove();
    const y2 = noGrad(() => m.forward(x));
    expect(seen.length).toBe(1);
    expectClose(y2.dataSync(), (kept as unknown as Tensor).dataSync(), 0, 0);
    expectTypedError(() => m.registerForwardHook(null as never), ArgumentError, 'registerForwardHook', 'hook');
    [x, y, y2, kept as unknown as Tensor].forEach((t) => t.dispose());
    m.dispose();
  });

  test('replaceParameter takes ownership, keeps requiresGrad, rejects unknown names; dispose frees all', () => {
    const m = new Pair();
    const old = m.scale;
    m.replaceParameter('scale', randn([4], { seed: 8 }));
    expect(old.isDisposed).toBe(true);
    expect(m.scale.requiresGrad).toBe(true);
    const stray = randn([1]);
    expectTypedError(() => m.replaceParameter('nope', stray), ArgumentError, 'replaceParameter', 'name');
    stray.dispose();
    const params = m.parameters();
    m.dispose();
    expect(params.every((p) => p.isDisposed)).toBe(true);
  });
});

describe('layers', () => {
  test('Linear, Embedding, RMSNorm, Conv1d: shapes, default init ranges, gradients', () => {
    const lin = new nn.Linear(64, 8, { seed: 1 });
    const w = lin.weight.dataSync();
    expect(Math.max(...w.map(Math.abs))).toBeLessThanOrEqual(1 / 8);
    const emb = new nn.Embedding(10, 8, { std: 0.5, seed: 2 });
    const norm = new nn.RMSNorm(8);
    expect(Array.from(norm.weight.dataSync())).toEqual(new Array(8).fill(1));
    const conv = new nn.Conv1d(8, 4, { seed: 3 });
    expect(conv.weight.shape).toEqual([8, 1, 4]);
    expect(Math.max(...conv.weight.dataSync().map(Math.abs))).toBeLessThanOrEqual(0.5);
    const ids = tensor([[1, 2, 3]], undefined, { dtype: 'int32' });
    const x = randn([2, 5, 64], { seed: 4 });
    const h = emb.forward(ids);
    expect(h.shape).toEqual([1, 3, 8]);
    const n = norm.forward(h);
    const y = noGrad(() => lin.forward(x));
    expect(y.shape).toEqual([2, 5, 8]);
    const x16 = x.cast('bfloat16');
    const y16 = lin.forward(x16);
    expect(y16.dtype).toBe('bfloat16');
    const nT = ops.transpose(n, 1, 2);
    const c = conv.forward(nT, { activation: 'silu' });
    expect(c.shape).toEqual([1, 8, 3]);
    const s16 = ops.sum(y16);
    const s32 = nn.castRecorded(s16, 'float32');
    const sc = ops.sum(c);
    const loss = ops.add(sc, s32);
    loss.backward();
    for (const m of [lin, emb, norm, conv]) for (const p of m.parameters()) expect(p.grad?.dtype).toBe('float32');
    [ids, x, x16, h, n, nT, y, y16, c, sc, s16, s32, loss].forEach((t) => t.dispose());
    [lin, emb, norm, conv].forEach((m) => m.dispose());
  });
});

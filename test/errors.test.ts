// Bad input to every public function gives a typed, catchable error naming the function and the
// argument; nothing crashes the process. Table-driven: [description, call, class, fn, arg].
import {
  ArgumentError,
  DTypeError,
  DeviceError,
  DisposedError,
  MambaError,
  ShapeError,
  arange,
  full,
  keep,
  manualSeed,
  ones,
  rand,
  randn,
  tensor,
  tidy,
  zeros,
} from '../lib';
import { native } from '../lib/native';

type Case = [string, () => unknown, new (...args: never[]) => MambaError, string, string | undefined];

const disposed = (() => {
  const t = zeros([2]);
  t.dispose();
  return t;
})();

const cases: Case[] = [
  // tensor()
  ['tensor: ragged nested arrays', () => tensor([[1, 2], [3]]), ShapeError, 'tensor', 'data'],
  ['tensor: a string value', () => tensor(['a' as unknown as number]), ArgumentError, 'tensor', 'data'],
  ['tensor: data not filling the shape', () => tensor([1, 2, 3], [2, 2]), ShapeError, 'tensor', 'shape'],
  ['tensor: a negative size', () => tensor(new Float32Array(4), [-1, 4]), ShapeError, 'tensor', 'shape'],
  ['tensor: an unknown dtype', () => tensor([1], [1], { dtype: 'float64' as never }), DTypeError, 'tensor', 'dtype'],
  ['tensor: an unknown device', () => tensor([1], [1], { device: 'tpu' as never }), DeviceError, 'tensor', 'device'],
  ['tensor: int32 out of range', () => tensor([2 ** 31], [1], { dtype: 'int32' }), ArgumentError, 'tensor', 'data'],
  ['tensor: int64 with a fraction', () => tensor([1.5], [1], { dtype: 'int64' }), ArgumentError, 'tensor', 'data'],
  ['tensor: an object as data', () => tensor({} as never), ArgumentError, 'tensor', 'data'],
  // zeros / ones / full
  ['zeros: a fractional size', () => zeros([1.5]), ShapeError, 'zeros', 'shape'],
  ['zeros: not an array', () => zeros(3 as never), ShapeError, 'zeros', 'shape'],
  ['ones: a bad dtype', () => ones([2], { dtype: 'uint8' as never }), DTypeError, 'ones', 'dtype'],
  ['full: a non-number value', () => full([2], 'x' as never), ArgumentError, 'full', 'value'],
  ['full: a fraction for int32', () => full([2], 0.5, { dtype: 'int32' }), ArgumentError, 'full', 'value'],
  ['full: a bad device', () => full([2], 1, { device: 'gpu' as never }), DeviceError, 'full', 'device'],
  ['full: too many elements', () => full([2 ** 30, 2 ** 30, 2 ** 30], 1), ShapeError, 'full', 'shape'],
  // arange
  ['arange: step 0', () => arange(0, 5, 0), ArgumentError, 'arange', 'step'],
  ['arange: NaN stop', () => arange(NaN), ArgumentError, 'arange', 'stop'],
  ['arange: infinite start', () => arange(-Infinity, 3), ArgumentError, 'arange', 'start'],
  ['arange: bad dtype', () => arange(0, 3, 1, { dtype: 'x' as never }), DTypeError, 'arange', 'dtype'],
  ['arange: bad device', () => arange(0, 3, 1, { device: 7 as never }), DeviceError, 'arange', 'device'],
  // rand / randn / manualSeed
  ['randn: int32 dtype', () => randn([2], { dtype: 'int32' }), DTypeError, 'randn', 'dtype'],
  ['randn: negative std', () => randn([2], { std: -1 }), ArgumentError, 'randn', 'options'],
  ['randn: negative seed', () => randn([2], { seed: -1 }), ArgumentError, 'randn', 'seed'],
  ['randn: bad shape', () => randn([2, NaN]), ShapeError, 'randn', 'shape'],
  ['randn: bad device', () => randn([2], { device: 'cuda:1' as never }), DeviceError, 'randn', 'device'],
  ['rand: low >= high', () => rand([2], { low: 1, high: 1 }), ArgumentError, 'rand', 'options'],
  ['rand: seed too large', () => rand([2], { seed: 2n ** 64n }), ArgumentError, 'rand', 'seed'],
  ['rand: bad dtype', () => rand([2], { dtype: 'int64' }), DTypeError, 'rand', 'dtype'],
  ['rand: bad shape', () => rand([-3]), ShapeError, 'rand', 'shape'],
  ['rand: fractional seed', () => rand([2], { seed: 0.5 }), ArgumentError, 'rand', 'seed'],
  ['manualSeed: a string', () => manualSeed('1' as never), ArgumentError, 'manualSeed', 'seed'],
  // tensor methods on disposed tensors and with bad arguments
  ['to: disposed', () => disposed.to('cpu'), DisposedError, 'to', 'tensor'],
  ['to: unknown device', () => zerosKept.to('metal' as never), DeviceError, 'to', 'device'],
  ['cast: disposed', () => disposed.cast('float16'), DisposedError, 'cast', 'tensor'],
  ['cast: unknown dtype', () => zerosKept.cast('complex64' as never), DTypeError, 'cast', 'dtype'],
  ['reshape: disposed', () => disposed.reshape([2]), DisposedError, 'reshape', 'tensor'],
  ['reshape: two -1', () => zerosKept.reshape([-1, -1]), ShapeError, 'reshape', 'shape'],
  ['reshape: wrong size', () => zerosKept.reshape([5]), ShapeError, 'reshape', 'shape'],
  ['reshape: not an array', () => zerosKept.reshape('2' as never), ShapeError, 'reshape', 'shape'],
  ['reshape: fractional size', () => zerosKept.reshape([0.5, 12]), ShapeError, 'reshape', 'shape'],
  ['dataSync: disposed', () => disposed.dataSync(), DisposedError, 'dataSync', 'tensor'],
  ['arraySync: disposed', () => disposed.arraySync(), DisposedError, 'dataSync', 'tensor'],
  // memory helpers
  ['tidy: not a function', () => tidy(3 as never), ArgumentError, 'tidy', 'fn'],
  ['tidy: an async function', () => tidy(async () => 1), ArgumentError, 'tidy', 'fn'],
  ['keep: not a tensor', () => keep({} as never), ArgumentError, 'keep', 'tensor'],
];

const zerosKept = zeros([6]);
afterAll(() => zerosKept.dispose());

describe('typed errors', () => {
  test.each(cases)('%s', (_name, call, cls, fn, arg) => {
    let caught: unknown;
    try {
      call();
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(cls);
    expect(caught).toBeInstanceOf(MambaError);
    const err = caught as MambaError;
    expect(err.fn).toBe(fn);
    if (arg !== undefined) expect(err.arg).toBe(arg);
    expect(err.message.startsWith(`${fn}:`)).toBe(true);
    expect(err.name).toBe(cls.name);
  });

  test('data() on a disposed tensor rejects with DisposedError', async () => {
    await expect(disposed.data()).rejects.toBeInstanceOf(DisposedError);
  });

  test('the native layer re-checks and throws the same classes', () => {
    const b = native();
    expect(() => b.full([-1], 'float32', 'cpu', 0)).toThrow(ShapeError);
    expect(() => b.full([1], 'float64' as never, 'cpu', 0)).toThrow(DTypeError);
    expect(() => b.full([1], 'float32', 'tpu' as never, 0)).toThrow(DeviceError);
    expect(() => b.cast({} as never, 'float32')).toThrow(ArgumentError);
    expect(() => b.fromData(new Float32Array(3), [2], 'float32', 'cpu')).toThrow(ShapeError);
    expect(() => b.fromData(new Int32Array(2), [2], 'float32', 'cpu')).toThrow(DTypeError);
    expect(() => b.rand([2], 'float32', 'cpu', 1 as never, 0, 1)).toThrow(ArgumentError);
    const h = b.full([4], 'float32', 'cpu', 1);
    b.dispose(h);
    b.dispose(h); // idempotent
    expect(() => b.dataSync(h)).toThrow(DisposedError);
    expect(() => b.reshape(h, [4])).toThrow(DisposedError);
  });
});

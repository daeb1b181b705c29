// rngState / setRngState (lib/creation.ts): the global generator behind unseeded rand/randn can be read and
// put back (what Trainer checkpoints save), and bad states are typed errors naming setRngState and state.
import { ArgumentError, manualSeed, randn, rngState, setRngState } from '../../lib';
import { expectEqualArrays, expectTypedError } from '../setup';

function draw(): Float32Array {
  const t = randn([8]);
  const v = Float32Array.from(t.dataSync() as Float32Array);
  t.dispose();
  return v;
}

describe('global generator state', () => {
  test('a saved state draws the same numbers again; manualSeed(s) is state s', () => {
    manualSeed(3);
    expect(rngState()).toBe(3n);
    draw();
    const s = rngState();
    expect(s).not.toBe(3n);
    const a = draw();
    const b = draw();
    setRngState(s);
    expectEqualArrays(draw(), a);
    expectEqualArrays(draw(), b);
    setRngState((1n << 64n) - 1n);
    expect(rngState()).toBe((1n << 64n) - 1n);
    draw();
    expect(rngState() < 1n << 64n).toBe(true);
  });

  test('bad states are typed errors and leave the generator unchanged', () => {
    manualSeed(5);
    for (const bad of [-1n, 1n << 64n, 3, '3', null, undefined, 2.5])
      expectTypedError(() => setRngState(bad as bigint), ArgumentError, 'setRngState', 'state');
    expect(rngState()).toBe(5n);
  });
});

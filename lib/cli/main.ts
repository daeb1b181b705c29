#!/usr/bin/env node
/**
 * The `mamba-node` command. `demo` (the default until training lands) creates tensors on the best
 * device, moves them between devices and dtypes, and prints what it found.
 */
import { bestDevice, compiledWithCuda, cudaAvailable, devices } from '../device';
import { randn } from '../creation';
import { memory, tidy } from '../memory';
import { trainCommand } from './train';

function demo(): void {
  const device = bestDevice();
  console.log(`mamba-node: CUDA support compiled in: ${compiledWithCuda() ? 'yes' : 'no'}; CUDA available: ${cudaAvailable() ? 'yes' : 'no'}`);
  for (const d of devices())
    console.log(`  cuda:${d.index} ${d.name}, ${(d.totalMemory / 2 ** 30).toFixed(1)} GiB, sm_${d.computeCapability.replace('.', '')}, ${d.multiprocessors} SMs`);
  console.log(`best device: ${device}`);
  const summary = tidy(() => {
    const x = randn([1024, 1024], { seed: 1, device });
    const bf = x.cast('bfloat16');
    const back = bf.cast('float32').to('cpu');
    const ref = x.to('cpu').dataSync();
    const got = back.dataSync();
    let maxRel = 0;
    let sum = 0;
    let sq = 0;
    for (let i = 0; i < ref.length; i++) {
      maxRel = Math.max(maxRel, Math.abs(got[i] - ref[i]) / Math.max(Math.abs(ref[i]), 1e-30));
      sum += ref[i];
      sq += ref[i] * ref[i];
    }
    const mean = sum / ref.length;
    const live = memory();
    return { mean, std: Math.sqrt(sq / ref.length - mean * mean), maxRel, live: live.numTensors, bytes: live.numBytes };
  });
  console.log(`randn [1024, 1024] on ${device}: mean ${summary.mean.toFixed(4)}, std ${summary.std.toFixed(4)}`);
  console.log(`bfloat16 round trip: max relative error ${summary.maxRel.toExponential(2)} (bf16 keeps 8 bits: <= 3.9e-3)`);
  console.log(`live tensors inside tidy: ${summary.live} (${(summary.bytes / 2 ** 20).toFixed(1)} MiB); after tidy: ${memory().numTensors}`);
}

function main(argv: string[]): number {
  const command = argv[0] ?? 'demo';
  if (command === 'demo') {
    demo();
    return 0;
  }
  if (command === 'train') {
    trainCommand(argv.slice(1)).then(
      (code) => (process.exitCode = code),
      (e: Error) => {
        console.error(`mamba-node train: ${e.message}`);
        process.exitCode = 1;
      },
    );
    return 0;
  }
  if (command === '--help' || command === '-h' || command === 'help') {
    console.log(
      'usage: mamba-node [demo|train]\n  demo   create tensors on the best device and print what was found (default)\n' +
        '  train  train a small Mamba on Selective Copying, or with --data FILE a byte-level model of FILE (mamba-node train --help)',
    );
    return 0;
  }
  console.error(`mamba-node: unknown command '${command}' (try --help)`);
  return 2;
}

process.exitCode = main(process.argv.slice(2));

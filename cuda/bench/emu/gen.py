#!/usr/bin/env python3
# Writes <out_dir>/fwd_emu.h: cuda/selective_scan_common.cuh + cuda/selective_scan_fwd.cuh rewritten so that g++
# compiles them against emu.h (CPU fibers, one per CUDA thread): launches become emu::launch, the ex2.approx asm
# becomes exp2f, dynamic shared memory comes from emu::smem(). Usage: gen.py <out_dir>
import os, re, sys
root = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
out = sys.argv[1] if len(sys.argv) > 1 else '.'
common = open(os.path.join(root, 'cuda/selective_scan_common.cuh')).read()
fwd = open(os.path.join(root, 'cuda/selective_scan_fwd.cuh')).read()
common = common.replace('#include "../native/params.h"', '#include "%s/native/params.h"' % root)
common = re.sub(r'#include <cuda_(bf16|fp16|runtime)\.h>\n', '', common)
common = common.replace('asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));', 'y = exp2f(x);')
fwd = fwd.replace('#include "selective_scan_common.cuh"', '')
fwd = fwd.replace('extern __shared__ float4 smem_f4[];', 'float4* smem_f4 = reinterpret_cast<float4*>(emu::smem());')
fwd = re.sub(r'kernel<<<(.*?), (.*?), (.*?), stream>>>\((.*?)\);', r'emu::launch(\1, dim3(\2), \3, [&]{ kernel(\4); });', fwd)
assert 'emu::launch' in fwd and 'exp2f(x)' in common
open(os.path.join(out, 'fwd_emu.h'), 'w').write('#pragma once\n' + common + '\n' + fwd)

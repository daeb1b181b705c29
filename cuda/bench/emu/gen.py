#!/usr/bin/env python3
# Writes <out_dir>/fwd_emu.h (cuda/selective_scan_common.cuh + selective_scan_fwd.cuh) and <out_dir>/bwd_emu.h
# (+ selective_scan_bwd.cuh with selective_scan_bwd_fast.cuh) rewritten so that g++ compiles them against emu.h (CPU
# fibers, one per CUDA thread): launches become emu::launch, the ex2.approx asm becomes exp2f, dynamic and static
# shared memory come from emu. Usage: gen.py <out_dir>
import os, re, sys
root = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
out = sys.argv[1] if len(sys.argv) > 1 else '.'
def read(name):
    return open(os.path.join(root, 'cuda', name)).read()

def split_top(s):
    parts, depth, cur = [], 0, ''
    for ch in s:
        if ch in '(<[': depth += 1
        if ch in ')>]': depth -= 1
        if ch == ',' and depth == 0:
            parts.append(cur.strip()); cur = ''
        else:
            cur += ch
    parts.append(cur.strip())
    return parts

def launches(src):
    res = ''
    while True:
        i = src.find('<<<')
        if i < 0: return res + src
        j = src.find('>>>', i)
        k = src.find('(', j)
        e = src.find(');', k)
        # the kernel expression: back from <<< to the start of the statement
        st = max(src.rfind('\n', 0, i), src.rfind(';', 0, i), src.rfind('{', 0, i)) + 1
        kern = src[st:i].strip()
        indent = src[st:i][:len(src[st:i]) - len(src[st:i].lstrip())]
        grid, block, smem = split_top(src[i + 3:j])[:3]
        args = src[k + 1:e]
        res += src[:st] + '%semu::launch(dim3(%s), dim3(%s), %s, [&]{ %s(%s); });' % (indent, grid, block, smem, kern, args)
        src = src[e + 2:]

def fix(src):
    src = src.replace('extern __shared__ float4 smem_f4[];', 'float4* smem_f4 = reinterpret_cast<float4*>(emu::smem());')
    src = re.sub(r'__shared__ (\w+) (\w+)\[(.*?)\];',
                 lambda m: '%s* %s = reinterpret_cast<%s*>(emu::static_smem("%s", sizeof(%s) * (%s)));' %
                 (m.group(1), m.group(2), m.group(1), m.group(2), m.group(1), m.group(3)), src)
    src = re.sub(r'#include "selective_scan_[a-z_]*\.cuh"', '', src)
    return launches(src)

common = read('selective_scan_common.cuh')
common = common.replace('#include "../native/params.h"', '#include "%s/native/params.h"' % root)
common = common.replace('#include "red.cuh"', read('red.cuh').replace('#pragma once', ''))
common = re.sub(r'#include <cuda_(bf16|fp16|runtime)\.h>\n', '', common)
common = common.replace('asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));', 'y = exp2f(x);')
common = common.replace('asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));', 'y = 1.f / x;')
assert 'exp2f(x)' in common and 'asm(' not in common
fwd = read('selective_scan_fwd.cuh')
fwd = fix(fwd.replace('#include "selective_scan_fwd_lanes.cuh"', read('selective_scan_fwd_lanes.cuh').replace('#pragma once', '')))
bwd = read('selective_scan_bwd.cuh')
i = bwd.index('#include "selective_scan_bwd_fast.cuh"')
bwd = fix(bwd[:i] + read('selective_scan_bwd_fast.cuh') + bwd[i + len('#include "selective_scan_bwd_fast.cuh"'):])
assert 'emu::launch' in fwd and 'emu::launch' in bwd and '<<<' not in fwd + bwd
open(os.path.join(out, 'fwd_emu.h'), 'w').write('#pragma once\n' + common + '\n' + fwd)
open(os.path.join(out, 'bwd_emu.h'), 'w').write('#pragma once\n#include "fwd_emu.h"\n' + bwd)

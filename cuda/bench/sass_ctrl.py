#!/usr/bin/env python3
"""Scoreboards and stalls of one kernel's SASS, without a disassembler (this machine has none).

Usage:
  nvcc -std=c++17 -O3 -arch=sm_90 --expt-relaxed-constexpr -cubin -o k.cubin cuda/selective_scan_fwd_bf16.cu
  python3 cuda/bench/sass_ctrl.py k.cubin KERNEL_SUBSTRING [NCU_SOURCE_CSV]
  python3 cuda/bench/sass_ctrl.py k.cubin KERNEL_SUBSTRING --hist FIRST LAST

Prints one line per instruction: its index, the control bits that sm_70+ encode in bits 105-125 of each 16-byte
instruction (stall cycles, the scoreboard it sets on write (W) and on read (R), the scoreboards it waits for), and,
given `ncu -i REP --page source --csv --print-source sass` of the same build, the mnemonic, the executions and
the sampled stalls. A wait is for a scoreboard's count to reach zero, so an instruction that waits for scoreboard k
waits for every instruction in flight that set k (docs/perf.md, seventeenth session). Without the CSV it prints
a mnemonic from OPS (learned from ncu listings of the scan kernels on sm_90; others print as op numbers). The cubin
must be the build ncu profiled, or the indices will not match.

--hist FIRST LAST: the mnemonic counts of instructions FIRST..LAST (say, a loop body: find its ends in the plain
listing; a loop ends at a BRA) and where its LDG and STS sit. ptxas gives all global loads of a loop one
scoreboard, so a load it places late delays the first use of every loaded value (docs/perf.md, eighteenth session).
"""
import csv
import struct
import sys


def text_sections(path):
    d = open(path, 'rb').read()
    assert d[:4] == b'\x7fELF' and d[4] == 2, 'not a 64-bit ELF (a cubin)'
    shoff = struct.unpack_from('<Q', d, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from('<HHH', d, 0x3A)
    shs = [struct.unpack_from('<IIQQQQ', d, shoff + i * shentsize) for i in range(shnum)]
    names = shs[shstrndx][4]
    for name, _typ, _flags, _addr, off, size in shs:
        n = d[names + name:d.index(b'\0', names + name)].decode()
        if n.startswith('.text.'):
            yield n, d[off:off + size]


# sm_90 opcode (low 12 bits of the instruction) -> mnemonic, as ncu listed them for the selective scan kernels.
OPS = {514: 'MOV', 519: 'SEL', 520: 'FSEL', 521: 'FMNMX', 524: 'ISETP', 528: 'IADD3', 529: 'LEA', 530: 'LOP3',
       531: 'IABS', 544: 'FMUL', 545: 'FADD', 547: 'FFMA', 548: 'IMAD', 549: 'IMAD', 551: 'IMAD', 574: 'F2FP',
       584: 'VIMNMX', 657: 'ULEA', 773: 'F2I', 774: 'I2F', 776: 'MUFU', 904: 'STS', 1057: 'FADD', 1059: 'FFMA',
       1077: 'HFMA2', 1417: 'SHFL', 2050: 'MOV', 2053: 'CS2R', 2060: 'ISETP', 2064: 'IADD3', 2065: 'LEA',
       2066: 'LOP3', 2073: 'SHF', 2080: 'FMUL', 2085: 'IMAD', 2178: 'UMOV', 2201: 'USHF', 2328: 'NOP', 2329: 'S2R',
       2375: 'BRA', 2381: 'EXIT', 2433: 'LDG', 2436: 'LDS', 2438: 'STG', 2441: 'SHFL', 2499: 'S2UR', 2745: 'ULDC',
       2946: 'LDC', 3084: 'ISETP', 3088: 'IADD3', 3089: 'LEA', 3108: 'IMAD', 3109: 'IMAD', 3111: 'IMAD',
       3620: 'IMAD', 3977: 'SHFL'}


def controls(code):
    for i in range(0, len(code), 16):
        lo, hi = struct.unpack_from('<QQ', code, i)
        c = hi >> 41
        yield dict(op=lo & 0xfff, stall=c & 15, wb=(c >> 5) & 7, rb=(c >> 8) & 7, wait=(c >> 11) & 63)


def ncu_rows(path, key):
    rows, cur, hdr, out = list(csv.reader(open(path))), None, None, []
    for r in rows:
        if r and r[0] == 'Kernel Name':
            cur = r[1]
        elif r and r[0] == 'Address':
            hdr = {h: i for i, h in enumerate(r)}
        elif cur and key in cur and r and hdr:
            stalls = sorted(((int(r[i] or 0), h[6:]) for h, i in hdr.items()
                             if h.startswith('stall_') and 'Not Issued' not in h), reverse=True)[:2]
            out.append((r[1].strip(), r[hdr['Instructions Executed']].replace(',', ''), r[hdr['# Samples']],
                        ' '.join('%s=%d' % (h, n) for n, h in stalls if n)))
    return out


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    found = [(n, c) for n, c in text_sections(sys.argv[1]) if sys.argv[2] in n]
    if len(found) != 1:
        sys.exit('%d kernels match %r: %s' % (len(found), sys.argv[2], [n[6:80] for n, _ in found]))
    name, code = found[0]
    if len(sys.argv) > 5 and sys.argv[3] == '--hist':
        a, b = int(sys.argv[4]), int(sys.argv[5])
        ops = [OPS.get(c['op'], 'op%03x' % c['op']) for c in controls(code)][a:b + 1]
        body = [o for o in ops if o != 'NOP']
        print('%s: %d instructions (%d without NOP)' % (name[6:], len(ops), len(body)))
        for k in ('LDG', 'STS'):
            print('  %s at %s (from %d)' % (k, [i for i, o in enumerate(ops) if o == k], a))
        for o, n in sorted(((o, body.count(o)) for o in set(body)), key=lambda x: -x[1]):
            print('  %5d %s' % (n, o))
        return
    src = ncu_rows(sys.argv[3], sys.argv[2]) if len(sys.argv) > 3 else []
    print(name[6:])
    for i, c in enumerate(controls(code)):
        ctrl = 'st%2d W%s R%s wait[%s]' % (c['stall'], c['wb'] if c['wb'] != 7 else '-', c['rb'] if c['rb'] != 7 else '-',
                                          ''.join(str(k) for k in range(6) if c['wait'] >> k & 1))
        what = '%-50s ex=%s n=%s %s' % src[i] if i < len(src) else OPS.get(c['op'], 'op %03x' % c['op'])
        print('%4d %-24s %s' % (i, ctrl, what))


if __name__ == '__main__':
    main()

#!/usr/bin/env python3
"""Scoreboards and stalls of one kernel's SASS, without a disassembler (this machine has none).

Usage:
  nvcc -std=c++17 -O3 -arch=sm_90 --expt-relaxed-constexpr -cubin -o k.cubin cuda/selective_scan_fwd_bf16.cu
  python3 cuda/bench/sass_ctrl.py k.cubin KERNEL_SUBSTRING [NCU_SOURCE_CSV]

Prints one line per instruction: its index, the control bits that sm_70+ encode in bits 105-125 of each 16-byte
instruction (stall cycles, the scoreboard it sets on write (W) and on read (R), the scoreboards it waits for), and,
given `ncu -i REP --page source --csv --print-source sass` of the same build, the mnemonic, the executions and
the sampled stalls. A wait is for a scoreboard's count to reach zero, so an instruction that waits for scoreboard k
waits for every instruction in flight that set k (docs/perf.md, seventeenth session). Without the CSV it prints
the opcode number in place of the mnemonic. The cubin must be the build ncu profiled, or the indices will not match.
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
    src = ncu_rows(sys.argv[3], sys.argv[2]) if len(sys.argv) > 3 else []
    print(name[6:])
    for i, c in enumerate(controls(code)):
        ctrl = 'st%2d W%s R%s wait[%s]' % (c['stall'], c['wb'] if c['wb'] != 7 else '-', c['rb'] if c['rb'] != 7 else '-',
                                          ''.join(str(k) for k in range(6) if c['wait'] >> k & 1))
        what = '%-50s ex=%s n=%s %s' % src[i] if i < len(src) else 'op %03x' % c['op']
        print('%4d %-24s %s' % (i, ctrl, what))


if __name__ == '__main__':
    main()

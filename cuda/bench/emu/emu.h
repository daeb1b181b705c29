// Cooperative-fiber CPU emulation of CUDA blocks for g++ (one ucontext fiber per CUDA thread, blocks run one after
// another): __syncthreads / __syncwarp are barriers over the live threads, shuffles go through a per-warp slot
// array between two warp barriers, cp.async is the synchronous fallback of selective_scan_common.cuh (no
// __CUDA_ARCH__), shared memory starts as 0xff bytes (NaN) so reads of unwritten data show up. Runtime calls are
// stubs of an H200-like device (132 SMs, 4 resident blocks per SM). Enough for the scan kernels; see gen.py.
#pragma once
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <ucontext.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>
#include <map>
#include <memory>
#include <string>
#include <cstdio>
#include <cstdlib>
using std::min;
using std::max;
#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif
namespace emu {
struct Fiber { ucontext_t ctx; bool done = false; };
inline ucontext_t sched_ctx;
inline std::vector<Fiber>* fibers = nullptr;
inline int cur = 0, nthreads = 0;
inline uint3 bidx, gdim, bdim;
inline std::vector<char> smem_buf;
inline std::function<void()>* body = nullptr;
inline unsigned block_arr = 0, block_gen = 0;
inline unsigned warp_arr[32], warp_gen[32];
inline float warp_slot[32][32];
inline long long switches = 0;
inline void* smem() { return smem_buf.data(); }
// Static __shared__ arrays (gen.py rewrites them to this): one buffer per declaration and block, NaN-filled.
inline std::map<std::string, std::vector<char>> static_smem_bufs;
inline void* static_smem(const char* key, size_t bytes) {
  auto it = static_smem_bufs.find(key);
  if (it == static_smem_bufs.end()) it = static_smem_bufs.emplace(key, std::vector<char>(bytes, static_cast<char>(0xff))).first;
  return it->second.data();
}
inline std::vector<std::unique_ptr<char[]>> stacks;
constexpr size_t kStack = 128 * 1024;
inline uint3 tIdx() { return make_uint3(cur % bdim.x, 0, 0); }
inline void yield() { ++switches; swapcontext(&(*fibers)[cur].ctx, &sched_ctx); }
inline int alive_in_warp(int w) {
  int n = 0;
  for (int t = w * 32; t < min(nthreads, w * 32 + 32); ++t) n += !(*fibers)[t].done;
  return n;
}
inline int alive() { int n = 0; for (auto& f : *fibers) n += !f.done; return n; }
inline void warp_barrier() {
  const int w = cur / 32;
  const unsigned g = warp_gen[w];
  if (++warp_arr[w] == static_cast<unsigned>(alive_in_warp(w))) { warp_arr[w] = 0; ++warp_gen[w]; return; }
  while (warp_gen[w] == g) yield();
}
inline void block_barrier() {
  const unsigned g = block_gen;
  if (++block_arr == static_cast<unsigned>(alive())) { block_arr = 0; ++block_gen; return; }
  while (block_gen == g) yield();
}
inline float shfl(float v, int src) {
  const int w = cur / 32;
  warp_barrier();  // previous shuffle fully consumed
  warp_slot[w][cur % 32] = v;
  warp_barrier();
  const float r = warp_slot[w][src & 31];
  return r;
}
inline void entry() {
  (*body)();
  (*fibers)[cur].done = true;
  // wake barrier waiters whose count now completes
  const int w = cur / 32;
  if (warp_arr[w] > 0 && warp_arr[w] == static_cast<unsigned>(alive_in_warp(w))) { warp_arr[w] = 0; ++warp_gen[w]; }
  if (block_arr > 0 && block_arr == static_cast<unsigned>(alive())) { block_arr = 0; ++block_gen; }
  swapcontext(&(*fibers)[cur].ctx, &sched_ctx);
}
inline void run_block(int threads, size_t smem_bytes, std::function<void()>& fn) {
  std::vector<Fiber> fs(threads);
  fibers = &fs;
  nthreads = threads;
  body = &fn;
  smem_buf.assign(smem_bytes + 16, static_cast<char>(0xff));  // NaN: reads of unwritten shared memory show up
  static_smem_bufs.clear();
  while (stacks.size() < static_cast<size_t>(threads)) stacks.emplace_back(new char[kStack]);
  block_arr = block_gen = 0;
  memset(warp_arr, 0, sizeof warp_arr);
  memset(warp_gen, 0, sizeof warp_gen);
  for (int t = 0; t < threads; ++t) {
    getcontext(&fs[t].ctx);
    fs[t].ctx.uc_stack.ss_sp = stacks[t].get();
    fs[t].ctx.uc_stack.ss_size = kStack;
    fs[t].ctx.uc_link = nullptr;
    makecontext(&fs[t].ctx, entry, 0);
  }
  bool any = true;
  while (any) {
    any = false;
    for (int t = 0; t < threads; ++t) {
      if (fs[t].done) continue;
      any = true;
      cur = t;
      swapcontext(&sched_ctx, &fs[t].ctx);
    }
  }
}
inline void launch(dim3 grid, dim3 block, size_t smem_bytes, std::function<void()> fn) {
  gdim = make_uint3(grid.x, grid.y, grid.z);
  bdim = make_uint3(block.x, 1, 1);
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        bidx = make_uint3(x, y, z);
        run_block(block.x, smem_bytes, fn);
      }
}
}  // namespace emu
#define threadIdx (emu::tIdx())
#define blockIdx (emu::bidx)
#define gridDim (emu::gdim)
#define blockDim (emu::bdim)
inline void __syncthreads() { emu::block_barrier(); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu::warp_barrier(); }
inline float __shfl_xor_sync(unsigned, float v, int m) { return emu::shfl(v, (emu::cur % 32) ^ m); }
inline float __shfl_sync(unsigned, float v, int s) { return emu::shfl(v, s); }
inline float __shfl_up_sync(unsigned, float v, int d) { int l = emu::cur % 32; return emu::shfl(v, l >= d ? l - d : l); }
inline float __shfl_down_sync(unsigned, float v, int d) { int l = emu::cur % 32; return emu::shfl(v, l + d < 32 ? l + d : l); }
inline float __expf(float x) { return expf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __logf(float x) { return logf(x); }
inline float __frcp_rn(float a) { return 1.f / a; }
inline float __uint_as_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
inline uint32_t __float_as_uint(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
inline float atomicAdd(float* a, float v) { float o = *a; *a += v; return o; }
inline void atomicAdd(float4* a, float4 v) { a->x += v.x; a->y += v.y; a->z += v.z; a->w += v.w; }
inline int atomicAdd(int* a, int v) { int o = *a; *a += v; return o; }
inline unsigned long long atomicAdd(unsigned long long* a, unsigned long long v) { unsigned long long o = *a; *a += v; return o; }
inline int atomicExch(int* a, int v) { int o = *a; *a = v; return o; }
inline void __threadfence() {}
// Blocks run one after another in grab order, so a spin-wait that sleeps has waited on a block that never ran.
inline void __nanosleep(unsigned) { fprintf(stderr, "emu: a block waited on one that has not run\n"); abort(); }
template <class T> inline T __ldcg(const T* p) { return *p; }
template <class T> inline T __ldg(const T* p) { return *p; }
// runtime stubs: an H200-like device
extern "C" {
cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int) { *v = a == cudaDevAttrMultiProcessorCount ? 132 : 0; return cudaSuccess; }
cudaError_t cudaFuncSetAttribute(const void*, cudaFuncAttribute, int) { return cudaSuccess; }
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* n, const void*, int, size_t) { *n = 4; return cudaSuccess; }
cudaError_t cudaGetLastError() { return cudaSuccess; }
cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t) { memset(p, v, n); return cudaSuccess; }
// Launches run to completion in host order, so a second stream and its events order nothing further.
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) { *s = reinterpret_cast<cudaStream_t>(1); return cudaSuccess; }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) { *e = reinterpret_cast<cudaEvent_t>(1); return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) { return cudaSuccess; }
const char* cudaGetErrorString(cudaError_t) { return "emu"; }
}
template <class F> cudaError_t cudaFuncSetAttribute(F*, cudaFuncAttribute, int) { return cudaSuccess; }
template <class F> cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* n, F*, int, size_t) { *n = 4; return cudaSuccess; }

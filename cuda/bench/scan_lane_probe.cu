// Probe (not part of any build): can lane = (channel, one state) recurrences, 2 warps per scheduler, keep the MUFU
// pipe busy? That is the layout an unsplit single-pass forward needs at S3 (1536 channels x 16 states = 768 warps,
// 2 per scheduler on the busiest SMs). Block = 8 warps, warp = 2 channels x 16 states, 32-step chunks whose
// dt, dt*u, B, C come from shared memory (written once; no global traffic at all) and whose per-step partial C.h
// go to shared memory (the y reduction over 16 lanes needs them somewhere). Variants: R = 1 the warp also sums its
// outputs' 16 partials; NB = 1 a block barrier per chunk; PF = 1 a chunk's decays all computed before the chain.
// Session 12 (H200): 0.26 ms for the S3 work with nothing else (L1/shared 98% busy, XU 47%, issue 39%), i.e. the
// layout is bound by shared-memory bandwidth before any input conversion or I/O (docs/perf.md, twelfth session).
//   nvcc -std=c++17 -O3 -arch=sm_90 -o build/scan_lane_probe cuda/bench/scan_lane_probe.cu && build/scan_lane_probe
#include <cstdio>
#include <cuda_runtime.h>
constexpr int T = 32, PITCH = 36;
__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
template <int R, int NB, int PF = 0>
__global__ void __launch_bounds__(256, 2) mb(float* out, int chunks) {
  __shared__ __align__(16) float sdt[8][2][T], sdtu[8][2][T];
  __shared__ __align__(16) float sB[16][PITCH], sC[16][PITCH];
  __shared__ __align__(16) float sP[8][2][16][PITCH];
  const int w = threadIdx.x / 32, lane = threadIdx.x % 32, c = lane / 16, n = lane % 16;
  for (int i = threadIdx.x; i < 8 * 2 * T; i += 256) {
    (&sdt[0][0][0])[i] = 0.01f + 0.001f * (i % 7);
    (&sdtu[0][0][0])[i] = 0.1f * ((i % 5) - 2);
  }
  for (int i = threadIdx.x; i < 16 * PITCH; i += 256) {
    (&sB[0][0])[i] = 0.3f * ((i % 3) - 1);
    (&sC[0][0])[i] = 0.2f * ((i % 4) - 1.5f);
  }
  __syncthreads();
  const float A2 = -1.4427f * (0.5f + 0.1f * n + 0.01f * blockIdx.x);
  float h = 0.f, acc = 0.f;
  const float4* dt4 = reinterpret_cast<const float4*>(&sdt[w][c][0]);
  const float4* dtu4 = reinterpret_cast<const float4*>(&sdtu[w][c][0]);
  const float4* B4 = reinterpret_cast<const float4*>(&sB[n][0]);
  const float4* C4 = reinterpret_cast<const float4*>(&sC[n][0]);
  float4* P4 = reinterpret_cast<float4*>(&sP[w][c][n][0]);
  for (int ck = 0; ck < chunks; ++ck) {
    const float off = 1e-7f * (ck & 7);
    if constexpr (PF) {
      // all decays and inputs of the chunk first (independent of h), then the chain
      float a[T], bb[T];
#pragma unroll
      for (int k = 0; k < T / 4; ++k) {
        const float4 d = dt4[k], du = dtu4[k], b = B4[k];
        a[4 * k] = ex2((d.x + off) * A2);
        a[4 * k + 1] = ex2(d.y * A2);
        a[4 * k + 2] = ex2(d.z * A2);
        a[4 * k + 3] = ex2(d.w * A2);
        bb[4 * k] = du.x * b.x; bb[4 * k + 1] = du.y * b.y; bb[4 * k + 2] = du.z * b.z; bb[4 * k + 3] = du.w * b.w;
      }
#pragma unroll
      for (int k = 0; k < T / 4; ++k) {
        const float4 cc = C4[k];
        const float cs[4] = {cc.x, cc.y, cc.z, cc.w};
        float y[4];
#pragma unroll
        for (int s = 0; s < 4; ++s) { h = fmaf(a[4 * k + s], h, bb[4 * k + s]); y[s] = cs[s] * h; }
        P4[k] = make_float4(y[0], y[1], y[2], y[3]);
      }
    } else
#pragma unroll
    for (int k = 0; k < T / 4; ++k) {
      const float4 d = dt4[k], du = dtu4[k], b = B4[k], cc = C4[k];
      const float ds[4] = {d.x + off, d.y, d.z, d.w}, dus[4] = {du.x, du.y, du.z, du.w};
      const float bs[4] = {b.x, b.y, b.z, b.w}, cs[4] = {cc.x, cc.y, cc.z, cc.w};
      float y[4];
#pragma unroll
      for (int s = 0; s < 4; ++s) {
        h = fmaf(ex2(ds[s] * A2), h, dus[s] * bs[s]);
        y[s] = cs[s] * h;
      }
      P4[k] = make_float4(y[0], y[1], y[2], y[3]);
    }
    if constexpr (R) {
      __syncwarp();
      // lane owns outputs (c2, t) = (lane / 16, 2 (lane % 16)), +1
      const int c2 = lane / 16, t = 2 * (lane % 16);
      float s0 = 0.f, s1 = 0.f;
#pragma unroll
      for (int m = 0; m < 16; ++m) {
        const float2 v = *reinterpret_cast<const float2*>(&sP[w][c2][m][t]);
        s0 += v.x; s1 += v.y;
      }
      acc += s0 * 0.5f + s1;
      __syncwarp();
    }
    if constexpr (NB) asm volatile("bar.sync 1, 256;");
  }
  out[blockIdx.x * 256 + threadIdx.x] = h + acc;
}
template <int R, int NB, int PF = 0>
void run(const char* name, int blocks, int chunks, float* d) {
  cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
  mb<R, NB, PF><<<blocks, 256>>>(d, chunks);
  cudaDeviceSynchronize();
  float best = 1e9;
  for (int it = 0; it < 10; ++it) {
    cudaEventRecord(a); mb<R, NB, PF><<<blocks, 256>>>(d, chunks); cudaEventRecord(b); cudaEventSynchronize(b);
    float ms; cudaEventElapsedTime(&ms, a, b); if (ms < best) best = ms;
  }
  printf("%-34s blocks %d chunks %d: %.3f ms (%.2f cycles per step at 1.98 GHz; MUFU-bound at 2 warps/scheduler: 16)\n",
         name, blocks, chunks, best, best * 1e-3 * 1.98e9 / (chunks * 32.0));
}
int main() {
  float* d;
  if (cudaMalloc(&d, 264 * 256 * sizeof(float)) != cudaSuccess) return 1;
  const int chunks = 16384 / 32;  // S3's L
  // 128 blocks of 8 warps: 2 warps per scheduler on 128 SMs (S3's busiest SMs); 264 blocks: 4 per scheduler.
  run<0, 0>("scan", 128, chunks, d);
  run<1, 0>("scan + own reduction", 128, chunks, d);
  run<0, 1>("scan + block barrier per chunk", 128, chunks, d);
  run<1, 1>("scan + reduction + barrier", 128, chunks, d);
  run<0, 0, 1>("PF scan", 128, chunks, d);
  run<1, 0, 1>("PF scan + own reduction", 128, chunks, d);
  run<1, 1, 1>("PF scan + reduction + barrier", 128, chunks, d);
  run<0, 0, 1>("PF scan, 4 warps per scheduler", 264, chunks, d);
  run<0, 0, 0>("scan, 4 warps per scheduler", 264, chunks, d);
  const cudaError_t e = cudaDeviceSynchronize();
  printf("%s\n", cudaGetErrorString(e));
  return e == cudaSuccess ? 0 : 1;
}

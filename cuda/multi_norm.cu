// Multi-tensor sum of squares for the global gradient norm (declaration in multi_norm.h), in the manner of
// PyTorch's multi_tensor_l2norm: the tensors (any number, float32/float16/bfloat16, device pointers) are cut
// into chunks of kChunk elements; a block squares and sums one chunk (16-byte vector loads, float32) and
// writes one partial; one last block adds all partials in chunk order. The tensor table travels by value in
// the kernel parameters (under 4 KB per launch), so nothing is copied from the host and nothing waits; long
// lists take several launches that write disjoint ranges of the one partial buffer. Launch shapes depend only
// on the list of sizes and the pointers' 16-byte alignment (allocator blocks are 256-byte aligned), and there
// are no atomics: the result is bitwise repeatable. Reference: the CPU path in native/ops/adamw.cc and
// test/optim/multi_norm.test.ts.
#include <algorithm>

#include "../native/elem.h"
#include "common.cuh"
#include "launch.h"
#include "range_reduce.cuh"
#include "multi_norm.h"

namespace mamba {
namespace {

cudaStream_t S() { return static_cast<cudaStream_t>(cuda::stream()); }

constexpr int kThreads = 256;
constexpr int64_t kChunk = 65536;     // elements per block: 256 per thread
constexpr int kMaxTensors = 48;       // per launch
constexpr int kMaxBlocks = 480;       // per launch
constexpr int kFinishThreads = 1024;

// One launch's table: tensor slots and, per block, (slot << 24) | chunk index within the tensor.
struct Batch {
  const void* data[kMaxTensors];
  int64_t n[kMaxTensors];
  uint8_t dtype[kMaxTensors];
  uint32_t block[kMaxBlocks];
  int64_t partial_base;  // partial index of this launch's block 0
};
static_assert(sizeof(Batch) < 4000, "kernel parameters must stay under 4 KB");

__global__ void __launch_bounds__(kThreads) multi_norm_chunks_kernel(const __grid_constant__ Batch batch, float* partial) {
  const uint32_t info = batch.block[blockIdx.x];
  const int slot = static_cast<int>(info >> 24);
  const int64_t chunk = info & 0xffffffu;
  const int64_t n = batch.n[slot], b = chunk * kChunk, e = min(n, b + kChunk);
  const void* x = batch.data[slot];
  float acc;
  switch (static_cast<DType>(batch.dtype[slot])) {
    case DType::Float16: acc = reduce::range_part<DType::Float16, true>(x, b, e, threadIdx.x, blockDim.x); break;
    case DType::BFloat16: acc = reduce::range_part<DType::BFloat16, true>(x, b, e, threadIdx.x, blockDim.x); break;
    default: acc = reduce::range_part<DType::Float32, true>(x, b, e, threadIdx.x, blockDim.x); break;
  }
  acc = reduce::block_sum(acc);
  if (threadIdx.x == 0) partial[batch.partial_base + blockIdx.x] = acc;
}

__global__ void __launch_bounds__(kFinishThreads) multi_norm_finish_kernel(const float* partial, int64_t count, float* out) {
  float acc = 0.0f;
  for (int64_t k = threadIdx.x; k < count; k += blockDim.x) acc += partial[k];
  acc = reduce::block_sum(acc);
  if (threadIdx.x == 0) *out = acc;
}

}  // namespace

void multi_norm_sq_cuda(const std::vector<MultiNormTensor>& tensors, float* out) {
  const char* fn = "multiNormSq";
  int64_t total = 0;
  for (const auto& t : tensors) {
    if (t.n <= 0) continue;
    const int64_t chunks = (t.n + kChunk - 1) / kChunk;
    if (chunks > 0xffffff) fail(ErrorKind::Argument, fn, "tensors", std::string(fn) + ": a tensor of more than 2^40 elements");
    total += chunks;
  }
  if (total == 0) {
    cuda::fill_cuda(out, 1, DType::Float32, 0.0);
    return;
  }
  float* partial = static_cast<float*>(cuda::alloc(static_cast<size_t>(total) * sizeof(float), fn));
  Batch batch{};
  int slots = 0, blocks = 0;
  int64_t base = 0;
  auto flush = [&] {
    if (blocks == 0) return;
    batch.partial_base = base;
    multi_norm_chunks_kernel<<<blocks, kThreads, 0, S()>>>(batch, partial);
    base += blocks;
    slots = 0;
    blocks = 0;
  };
  for (const auto& t : tensors) {
    if (t.n <= 0) continue;
    const int64_t chunks = (t.n + kChunk - 1) / kChunk;
    for (int64_t c = 0; c < chunks; ++c) {
      // A tensor may continue in the next launch under a new slot.
      if (blocks == kMaxBlocks || (c == 0 && slots == kMaxTensors)) flush();
      if (c == 0 || blocks == 0) {
        batch.data[slots] = t.data;
        batch.n[slots] = t.n;
        batch.dtype[slots] = static_cast<uint8_t>(t.dtype);
        ++slots;
      }
      batch.block[blocks++] = (static_cast<uint32_t>(slots - 1) << 24) | static_cast<uint32_t>(c);
    }
  }
  flush();
  multi_norm_finish_kernel<<<1, kFinishThreads, 0, S()>>>(partial, total, out);
  cuda::check_last(fn);
  cuda::free(partial);  // stream-ordered: reused only after the kernels above
}

}  // namespace mamba

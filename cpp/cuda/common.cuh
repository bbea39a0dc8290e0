// cpp/cuda/common.cuh — what every CUDA kernel file shares: dtype storage (load/store), the
// fixed-order float64 block reduction, the second-stage sum of per-block partials, error checks.
// Test: tests/test_cuda.py (on a GPU); the order's host twin in cpp/tests/test_cuda_api.cpp.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "spikegrad/cuda.hpp"

namespace spikegrad::cuda::detail {

inline void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string("spikegrad CUDA: ") + what + ": " + cudaGetErrorString(status));
  }
}

// A launch's own error (bad configuration) is reported at once; faults inside the kernel
// surface at the next synchronizing call, as for every CUDA library.
inline void check_launch(const char* kernel) { check_cuda(cudaGetLastError(), kernel); }

inline cudaStream_t as_stream(Stream stream) { return static_cast<cudaStream_t>(stream); }

inline int64_t num_blocks(int64_t N) { return N <= 0 ? 0 : (N + kBlockThreads - 1) / kBlockThreads; }

// ---------------------------------------------------------------------------------------------
// Storage: x's dtype in memory, the state dtype in registers. Only float16 and bfloat16 convert;
// float <-> half rounds to nearest even, NaN stays NaN.
// ---------------------------------------------------------------------------------------------

// float16 and bfloat16 share the float32 kernels: the storage format is a run-time argument
// (a branch that is uniform over the grid), which halves the number of compiled kernels.
enum class Storage : int { Native, Half, BFloat16 };

inline Storage storage_of(DType dtype) {
  return dtype == DType::Float16 ? Storage::Half : (dtype == DType::BFloat16 ? Storage::BFloat16 : Storage::Native);
}

// p[i] as the state dtype `real`.
template <typename real>
__device__ __forceinline__ real load(const void* p, int64_t i, Storage storage) {
  if constexpr (std::is_same_v<real, double>) {
    return __ldg(static_cast<const double*>(p) + i);
  } else {
    if (storage == Storage::Half) return __half2float(__ldg(static_cast<const __half*>(p) + i));
    if (storage == Storage::BFloat16) return __bfloat162float(__ldg(static_cast<const __nv_bfloat16*>(p) + i));
    return __ldg(static_cast<const float*>(p) + i);
  }
}

// p[i] = value, rounded to the storage format (to nearest even).
template <typename real>
__device__ __forceinline__ void store(void* p, int64_t i, real value, Storage storage) {
  if constexpr (std::is_same_v<real, double>) {
    static_cast<double*>(p)[i] = value;
  } else {
    if (storage == Storage::Half) {
      static_cast<__half*>(p)[i] = __float2half_rn(value);
    } else if (storage == Storage::BFloat16) {
      static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(value);
    } else {
      static_cast<float*>(p)[i] = value;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The fixed-order float64 block sum. Within a warp, a shuffle tree (offsets 16, 8, 4, 2, 1,
// lane 0 keeps the total); the warps' totals then go through the same tree in warp 0, with
// zeros in the lanes past the last warp. The order depends on kBlockThreads only, never on the
// GPU or the grid: ordered_device_sum (dispatch.cu) spells it on the host.
// ---------------------------------------------------------------------------------------------

inline constexpr int kWarps = kBlockThreads / 32;
static_assert(kBlockThreads % 32 == 0 && kWarps <= 32, "the block sum assumes whole warps, at most 32");

__device__ __forceinline__ double warp_sum(double value) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_down_sync(0xffffffffu, value, offset);
  return value;
}

// Sums value[i] over the block's threads, for i < K; thread 0 receives the totals in value.
// Every thread of the block must call it (it synchronizes); shared: K * kWarps doubles.
template <int K>
__device__ __forceinline__ void block_sum(double (&value)[K], double* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int i = 0; i < K; ++i) {
    value[i] = warp_sum(value[i]);
    if (lane == 0) shared[i * kWarps + warp] = value[i];
  }
  __syncthreads();
  if (warp == 0) {
#pragma unroll
    for (int i = 0; i < K; ++i) value[i] = warp_sum(lane < kWarps ? shared[i * kWarps + lane] : 0.0);
  }
  __syncthreads();  // the caller may reuse `shared` at once
}

// The second stage: out[j] = the sum over blocks b of partials[j * num_partials + b], for
// j < num_values, one CUDA block per j; thread k adds partials k, k + kBlockThreads, ... in
// order, then block_sum. destination(j) maps j to its output address.
template <typename Destination>
__global__ void __launch_bounds__(kBlockThreads)
    sum_partials_kernel(const double* __restrict__ partials, int64_t num_partials, Destination destination) {
  __shared__ double shared[kWarps];
  const double* row = partials + static_cast<int64_t>(blockIdx.x) * num_partials;
  double total[1] = {0.0};
  for (int64_t b = threadIdx.x; b < num_partials; b += kBlockThreads) total[0] += row[b];
  block_sum(total, shared);
  if (threadIdx.x == 0) *destination(static_cast<int64_t>(blockIdx.x)) = total[0];
}

template <typename Destination>
void sum_partials(const double* partials, int64_t num_partials, int64_t num_values, Destination destination,
                  cudaStream_t stream) {
  if (num_values <= 0) return;
  sum_partials_kernel<<<static_cast<unsigned>(num_values), kBlockThreads, 0, stream>>>(partials, num_partials,
                                                                                       destination);
  check_launch("sum_partials_kernel");
}

// A contiguous destination: out[j].
struct Contiguous {
  double* out;
  __device__ double* operator()(int64_t j) const { return out + j; }
};

// The neuron backward's chunk: its x, grad_output and v[t-1] rows live in static shared memory
// (at most 48 KiB a block): 8 steps of float, 4 of double.
template <typename real>
inline constexpr int kBackwardChunkSteps = sizeof(real) == 8 ? kChunkSteps / 2 : kChunkSteps;

// The backward's checkpoints (the membrane at the start of every chunk but the first and last).
inline std::size_t checkpoint_count(int64_t T, int64_t N, int64_t chunk_steps = kChunkSteps) {
  const int64_t num_chunks = (T + chunk_steps - 1) / chunk_steps;
  return num_chunks > 2 ? static_cast<std::size_t>(num_chunks - 2) * static_cast<std::size_t>(N) : 0;
}

// The workspace: [2T + 1, num_blocks] doubles of partials, then the checkpoints (state dtype).
inline std::size_t partials_count(int64_t rows, int64_t N) {
  return static_cast<std::size_t>(rows) * static_cast<std::size_t>(num_blocks(N));
}

inline unsigned grid_size(int64_t blocks, const char* what) {
  if (blocks > 0x7fffffff) throw std::invalid_argument(std::string(what) + ": N is too large for one grid");
  return static_cast<unsigned>(blocks);
}

}  // namespace spikegrad::cuda::detail

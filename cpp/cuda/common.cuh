// cpp/cuda/common.cuh — what every CUDA kernel file shares: dtype storage (load/store), the
// fixed-order float64 block reduction, the second-stage sum of per-block partials, error checks.
// Test: tests/cuda/test_cuda.py (on a GPU); the order's host twin in cpp/tests/test_cuda_api.cpp.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cassert>  // __assert_fail (device_check_failed) where NDEBUG is not defined
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "spikegrad/cuda.hpp"
#include "spikegrad/portable.hpp"  // ordered_sum_lane

#if defined(NDEBUG) && defined(__GNUC__)
// glibc's <assert.h> declares its assertion handler only without NDEBUG; CUDA implements it on the
// device (device_check_failed below calls it in every build).
extern "C" __host__ __device__ void __assert_fail(const char* assertion, const char* file, unsigned int line,
                                                  const char* function) noexcept __attribute__((__noreturn__));
#endif

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

// ---------------------------------------------------------------------------------------------
// Checks of values that live on the device (a tensor parameter, a statistic computed by a kernel).
// Reading them on the host would synchronize the stream, which stalls the host and breaks CUDA
// graph capture; so the kernel checks them itself. A failed check prints one line naming the value
// and stops the kernel with a device-side assertion, which every later synchronizing call reports
// (cudaErrorAssert, "device-side assert triggered"; torch raises RuntimeError). As with torch's own
// device asserts the CUDA context is unusable afterwards: the process must restart. __assert_fail
// (CUDA's device-side handler behind assert()) is called directly, because assert() is compiled out
// under NDEBUG (a Release build).
// ---------------------------------------------------------------------------------------------

__device__ __noinline__ inline void device_check_failed(const char* what) {
  printf("spikegrad: %s\n", what);
  __assert_fail(what, __FILE__, static_cast<unsigned>(__LINE__), __func__);
}

// The leak lam, when it comes from a device scalar (a learnable decay); one thread.
template <typename real>
__device__ inline void check_decay(real decay) {
  if (decay != decay) device_check_failed("decay is NaN");
}

// threshold[t] and sg_param[t], t < T, checked as validate_neuron_params does on the CPU: no NaN,
// threshold > 0 unless the scale is absolute, sg_param > 0. Called by one thread per launch.
template <typename real>
__device__ inline void check_neuron_parameters(const real* threshold, const real* sg_param, int64_t T,
                                               bool absolute_scale) {
  for (int64_t t = 0; t < T; ++t) {
    const real theta = threshold[t], p = sg_param[t];
    if (theta != theta) {
      printf("spikegrad: threshold[%lld] is NaN\n", static_cast<long long>(t));
      device_check_failed("threshold contains NaN");
    }
    if (p != p) {
      printf("spikegrad: sg_param[%lld] is NaN\n", static_cast<long long>(t));
      device_check_failed("sg_param contains NaN");
    }
    if (!absolute_scale && !(theta > 0)) {
      printf("spikegrad: threshold[%lld] = %g, must be > 0 for a relative or threshold-robust scale\n",
             static_cast<long long>(t), static_cast<double>(theta));
      device_check_failed("threshold must be > 0 for a relative or threshold-robust scale");
    }
    if (!(p > 0)) {
      printf("spikegrad: sg_param[%lld] = %g, must be > 0\n", static_cast<long long>(t), static_cast<double>(p));
      device_check_failed("sg_param must be > 0");
    }
  }
}

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
// Vectors of neurons: a thread handles kVector<real> consecutive neurons, so that each row
// access is one 16-byte load or store (8 bytes for float16/bfloat16 storage): the loads a thread
// has in flight carry four times the bytes, which HBM needs to reach its bandwidth. Each neuron
// still runs the same per-neuron code, so the bits do not change. The vector path needs N to be
// a multiple of kVector and every array to start on a vector boundary (is_vector_aligned); else
// the thread loads its neurons one by one (a branch that is uniform over the grid).
// ---------------------------------------------------------------------------------------------

template <typename real>
inline constexpr int kVector = sizeof(real) == 8 ? 2 : 4;

// Whether p (nullptr counts as aligned) starts on a kVector<real>-element boundary of storage.
template <typename real>
inline bool is_vector_aligned(const void* p, Storage storage) {
  const std::size_t element = std::is_same_v<real, double> ? 8 : (storage == Storage::Native ? 4 : 2);
  return reinterpret_cast<std::uintptr_t>(p) % (element * static_cast<std::size_t>(kVector<real>)) == 0;
}

// Whether a launch over N neurons takes the vector path: N a multiple of kVector<real> and every
// [T, N] or [N] array of the launch (nullptr: absent) on a vector boundary.
template <typename real, typename... Arrays>
inline bool vector_path(int64_t N, Storage storage, const Arrays*... arrays) {
  return N % kVector<real> == 0 && (is_vector_aligned<real>(arrays, storage) && ...);
}

// The grid of a launch with kVector<real> neurons per thread.
template <typename real>
inline int64_t vector_blocks(int64_t N) {
  return num_blocks((N + kVector<real> - 1) / kVector<real>);
}

// out[j] = p[i + j] for j < kVector<real>, i a multiple of kVector<real>, as the state dtype.
template <typename real>
__device__ __forceinline__ void load_vector(const void* p, int64_t i, Storage storage, real (&out)[kVector<real>]) {
  if constexpr (std::is_same_v<real, double>) {
    const double2 v = __ldg(reinterpret_cast<const double2*>(static_cast<const double*>(p) + i));
    out[0] = v.x;
    out[1] = v.y;
  } else if (storage == Storage::Native) {
    const float4 v = __ldg(reinterpret_cast<const float4*>(static_cast<const float*>(p) + i));
    out[0] = v.x;
    out[1] = v.y;
    out[2] = v.z;
    out[3] = v.w;
  } else {
    const uint2 raw = __ldg(reinterpret_cast<const uint2*>(static_cast<const unsigned short*>(p) + i));
    const unsigned words[2] = {raw.x, raw.y};
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      float2 pair;
      if (storage == Storage::Half) {
        __half2 h;
        memcpy(&h, &words[j], sizeof h);
        pair = __half22float2(h);
      } else {
        __nv_bfloat162 b;
        memcpy(&b, &words[j], sizeof b);
        pair = __bfloat1622float2(b);
      }
      out[2 * j] = pair.x;
      out[2 * j + 1] = pair.y;
    }
  }
}

// p[i + j] = value[j], rounded to the storage format as store() rounds (to nearest even).
template <typename real>
__device__ __forceinline__ void store_vector(void* p, int64_t i, const real (&value)[kVector<real>],
                                             Storage storage) {
  if constexpr (std::is_same_v<real, double>) {
    *reinterpret_cast<double2*>(static_cast<double*>(p) + i) = make_double2(value[0], value[1]);
  } else if (storage == Storage::Native) {
    *reinterpret_cast<float4*>(static_cast<float*>(p) + i) = make_float4(value[0], value[1], value[2], value[3]);
  } else {
    unsigned words[2];
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      if (storage == Storage::Half) {
        const __half2 h = __floats2half2_rn(value[2 * j], value[2 * j + 1]);
        memcpy(&words[j], &h, sizeof h);
      } else {
        const __nv_bfloat162 b = __floats2bfloat162_rn(value[2 * j], value[2 * j + 1]);
        memcpy(&words[j], &b, sizeof b);
      }
    }
    *reinterpret_cast<uint2*>(static_cast<unsigned short*>(p) + i) = make_uint2(words[0], words[1]);
  }
}

// The kVector<real> neurons from `first`: one vector access when `vector` (aligned, all present),
// else one access per neuron that exists (n < N).
template <typename real>
__device__ __forceinline__ void load_neurons(const void* p, int64_t row, int64_t first, int64_t N, bool vector,
                                             Storage storage, real (&out)[kVector<real>]) {
  if (vector) {
    load_vector<real>(p, row + first, storage, out);
  } else {
#pragma unroll
    for (int j = 0; j < kVector<real>; ++j) {
      out[j] = first + j < N ? load<real>(p, row + first + j, storage) : static_cast<real>(0);
    }
  }
}

template <typename real>
__device__ __forceinline__ void store_neurons(void* p, int64_t row, int64_t first, int64_t N, bool vector,
                                              Storage storage, const real (&value)[kVector<real>]) {
  if (vector) {
    store_vector<real>(p, row + first, value, storage);
  } else {
#pragma unroll
    for (int j = 0; j < kVector<real>; ++j) {
      if (first + j < N) store(p, row + first + j, value[j], storage);
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

// block_sum split in two, for sums made at every step of a chunk: step_sums_add stores the warps'
// totals of step k (shuffles only, no barrier); block_sums_of_steps then finishes each step k <
// steps with the same tree over the warps as block_sum, behind one barrier for the whole chunk
// instead of two per step. The bits are block_sum's. shared: [K][kSteps][kWarps] doubles.
template <int K, int kSteps>
__device__ __forceinline__ void step_sums_add(double (&value)[K], int k, double* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int i = 0; i < K; ++i) {
    value[i] = warp_sum(value[i]);
    if (lane == 0) shared[(i * kSteps + k) * kWarps + warp] = value[i];
  }
}

// Thread 0 receives sum i of step k in write(i, k, total). Every thread of the block calls it.
template <int K, int kSteps, typename Write>
__device__ __forceinline__ void block_sums_of_steps(int steps, double* shared, Write&& write) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();
  if (warp == 0) {
    for (int k = 0; k < steps; ++k) {
#pragma unroll
      for (int i = 0; i < K; ++i) {
        const double total = warp_sum(lane < kWarps ? shared[(i * kSteps + k) * kWarps + lane] : 0.0);
        if (lane == 0) write(i, k, total);
      }
    }
  }
  __syncthreads();  // the next chunk reuses `shared`
}

// The canonical float64 sum of values[0..M) (spikegrad::ordered_sum, portable.hpp) by one block:
// thread k runs lane k's chain (ordered_sum_lane, the host's own source), then block_sum's trees,
// which are ordered_sum_trees. Thread 0 receives the total. Every thread of the block calls it.
static_assert(spikegrad::kOrderedSumLanes == kBlockThreads, "ordered_sum's lanes are one block's threads");
__device__ __forceinline__ double block_ordered_sum(const double* __restrict__ values, int64_t M) {
  __shared__ double warp_totals[kWarps];
  double total[1] = {spikegrad::ordered_sum_lane(values, M, static_cast<int>(threadIdx.x))};
  block_sum(total, warp_totals);
  return total[0];
}

// The second stage: out[j] = the canonical sum over blocks b of partials[j * num_partials + b],
// for j < num_values, one CUDA block per j. destination(j) maps j to its output address.
template <typename Destination>
__global__ void __launch_bounds__(kBlockThreads)
    sum_partials_kernel(const double* __restrict__ partials, int64_t num_partials, Destination destination) {
  const double total = block_ordered_sum(partials + static_cast<int64_t>(blockIdx.x) * num_partials, num_partials);
  if (threadIdx.x == 0) *destination(static_cast<int64_t>(blockIdx.x)) = total;
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

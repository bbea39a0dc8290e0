// cpp/cuda/multilevel_cuda.cu — the multi-level CF neuron (docs/spec.md §6) and the PNB partial sums on
// the GPU: one thread per neuron, fused over T, each step multilevel_element.hpp's (the CPU block
// loops call the same functions); the same chunked recompute and fixed-order float64 reductions
// as neuron_cuda.cuh. The typed siblings (multilevel_forward_cuda, ...) and the DType launchers
// (cuda::multilevel_forward, ...) both end in the launchers here.
// Test: tests/cuda/test_cuda.py (on a GPU), cpp/tests/test_cuda_api.cpp (host side).

#include "common.cuh"
#include "spikegrad/multilevel_element.hpp"
#include "spikegrad/pnb_element.hpp"

namespace spikegrad::cuda {
namespace detail {

using spikegrad::detail::LevelParams;

// The start of every CF kernel: lam from the device scalar of a learnable decay (when given), then
// thread 0 of block 0 checks a[t], t < T, as validate_multilevel_params does on the CPU (finite
// and > 0), and the decay.
template <typename real>
__device__ __forceinline__ void resolve_level_parameters(LevelParams<real>& L, const real* decay_device,
                                                         const real* a, int64_t T) {
  if (decay_device != nullptr) L.decay = *decay_device;
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  check_decay(L.decay);
  for (int64_t t = 0; t < T; ++t) {
    const real value = a[t];
    if (!(value > 0 && isfinite(value))) {
      printf("spikegrad: a[%lld] = %g, must be finite and > 0\n", static_cast<long long>(t),
             static_cast<double>(value));
      device_check_failed("a must be finite and > 0");
    }
  }
}

template <typename real, LevelSurrogate G, bool Smooth>
__global__ void __launch_bounds__(kBlockThreads)
    multilevel_forward_kernel(LevelParams<real> L, const real* __restrict__ decay_device, int64_t T, int64_t N,
                              const real* __restrict__ a, const real* __restrict__ v_init, Storage storage,
                              bool vector, const void* __restrict__ x, void* __restrict__ output,
                              void* __restrict__ membrane, void* __restrict__ v_last) {
  constexpr int V = kVector<real>;  // neurons per thread, as neuron_forward_kernel
  resolve_level_parameters(L, decay_device, a, T);
  const int64_t first = (static_cast<int64_t>(blockIdx.x) * kBlockThreads + threadIdx.x) * V;
  if (first >= N) return;
  real v[V];
#pragma unroll
  for (int j = 0; j < V; ++j) v[j] = first + j < N ? v_init[first + j] : static_cast<real>(0);
  for (int64_t t0 = 0; t0 < T; t0 += kChunkSteps) {
    real xs[kChunkSteps][V];
#pragma unroll
    for (int k = 0; k < kChunkSteps; ++k) {
      if (t0 + k < T) load_neurons<real>(x, (t0 + k) * N, first, N, vector, storage, xs[k]);
    }
#pragma unroll
    for (int k = 0; k < kChunkSteps; ++k) {
      const int64_t t = t0 + k;
      if (t < T) {
        const real a_t = a[t];
        real o[V], h[V];
#pragma unroll
        for (int j = 0; j < V; ++j) {
          h[j] = spikegrad::detail::multilevel_element_step<real, G, Smooth>(xs[k][j], v[j], o[j], L, a_t);
        }
        store_neurons<real>(output, t * N, first, N, vector, storage, o);
        if (membrane != nullptr) store_neurons<real>(membrane, t * N, first, N, vector, storage, h);
      }
    }
  }
  store_neurons<real>(v_last, 0, first, N, vector, storage, v);
}

// As neuron_backward_kernel: partials [T + 1, num_blocks] (row 0 decay, row 1 + t a[t]).
template <typename real, LevelSurrogate G, bool Smooth>
__global__ void __launch_bounds__(kBlockThreads)
    multilevel_backward_kernel(LevelParams<real> L, const real* __restrict__ decay_device, int64_t T, int64_t N,
                               const real* __restrict__ a,
                               const real* __restrict__ v_init, bool detach_reset, bool param_grads,
                               Storage storage,
                               const void* __restrict__ x, const void* __restrict__ grad_output,
                               const void* __restrict__ grad_membrane, const void* __restrict__ grad_v_last,
                               void* __restrict__ grad_x, real* __restrict__ grad_v_init,
                               double* __restrict__ partials, real* __restrict__ checkpoints) {
  __shared__ double shared[kWarps];
  __shared__ double step_shared[kChunkSteps * kWarps];
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kBlockThreads + threadIdx.x;
  const bool active = n < N;
  const int64_t num_blocks = gridDim.x;
  const int64_t num_chunks = (T + kChunkSteps - 1) / kChunkSteps;
  const real zero = static_cast<real>(0);
  resolve_level_parameters(L, decay_device, a, T);

  real v = active ? v_init[n] : zero;
  if (active) {
    for (int64_t c = 0; c + 1 < num_chunks; ++c) {
      if (c > 0) checkpoints[(c - 1) * N + n] = v;
#pragma unroll
      for (int k = 0; k < kChunkSteps; ++k) {
        const int64_t t = c * kChunkSteps + k;
        real o;
        spikegrad::detail::multilevel_element_step<real, G, Smooth>(load<real>(x, t * N + n, storage), v, o, L,
                                                                    a[t]);
      }
    }
  }

  real g_v = (active && grad_v_last != nullptr) ? load<real>(grad_v_last, n, storage) : zero;
  double lam_sum = 0.0;
  for (int64_t c = num_chunks - 1; c >= 0; --c) {
    const int64_t t0 = c * kChunkSteps;
    if (c + 1 < num_chunks) v = !active ? zero : (c == 0 ? v_init[n] : checkpoints[(c - 1) * N + n]);
    real xs[kChunkSteps], g_outs[kChunkSteps], v_prev[kChunkSteps];
#pragma unroll
    for (int k = 0; k < kChunkSteps; ++k) {  // the chunk's rows first: all loads in flight together
      const int64_t t = t0 + k;
      xs[k] = g_outs[k] = zero;
      if (t < T && active) {
        xs[k] = load<real>(x, t * N + n, storage);
        if (grad_output != nullptr) g_outs[k] = load<real>(grad_output, t * N + n, storage);
      }
    }
#pragma unroll
    for (int k = 0; k < kChunkSteps; ++k) {
      const int64_t t = t0 + k;
      if (t < T) {
        v_prev[k] = v;
        real o;
        spikegrad::detail::multilevel_element_step<real, G, Smooth>(xs[k], v, o, L, a[t]);
      }
    }
#pragma unroll
    for (int k = kChunkSteps - 1; k >= 0; --k) {
      const int64_t t = t0 + k;
      if (t < T) {
        const real g_out = g_outs[k];
        const real g_mem = (active && grad_membrane != nullptr) ? load<real>(grad_membrane, t * N + n, storage) : zero;
        real scratch = v_prev[k], c_a, c_lam;
        spikegrad::detail::multilevel_element_backward<real, G>(detach_reset, xs[k], scratch, g_out, g_mem, g_v, c_a,
                                                                c_lam, L, a[t]);
        if (active) store(grad_x, t * N + n, scratch, storage);
        if (param_grads) {  // uniform over the grid: every thread of the block takes part
          double sums[1] = {active ? static_cast<double>(c_a) : 0.0};
          if (active) lam_sum += static_cast<double>(c_lam);
          step_sums_add<1, kChunkSteps>(sums, k, step_shared);
        }
      }
    }
    if (param_grads) {  // block_sum's bits, one barrier per chunk (common.cuh)
      const int steps = static_cast<int>(T - t0 < kChunkSteps ? T - t0 : kChunkSteps);
      block_sums_of_steps<1, kChunkSteps>(steps, step_shared, [&](int, int k, double total) {
        partials[(1 + t0 + k) * num_blocks + blockIdx.x] = total;
      });
    }
  }
  if (active) grad_v_init[n] = g_v;
  if (!param_grads) return;
  double decay_sum[1] = {lam_sum};
  block_sum(decay_sum, shared);
  if (threadIdx.x == 0) partials[blockIdx.x] = decay_sum[0];
}

// partials row j -> grad_decay (j = 0) or grad_a[j - 1].
struct MultilevelGradients {
  double* grad_decay;
  double* grad_a;
  __device__ double* operator()(int64_t j) const { return j == 0 ? grad_decay : grad_a + (j - 1); }
};

// Checks the host arguments (validate_multilevel_shape of the CPU) and returns the level
// parameters. The values of the device array a (and of a device decay) are checked by the kernels
// (resolve_level_parameters): reading them here would synchronize the stream.
template <typename real>
LevelParams<real> checked_level_params(MultilevelParams<real> P, const real* decay_device) {
  if (decay_device != nullptr) P.decay = static_cast<real>(0);  // read and checked by the kernels
  validate_multilevel_shape(P);
  return spikegrad::detail::level_params(P);
}

// The storage of x and the arrays shaped like it: real itself (the typed siblings) or the
// DType's (float16 and bfloat16 with a float32 state).
template <typename real>
void launch_multilevel_forward(const MultilevelOptions& options, Storage storage, const MultilevelParams<real>& P,
                               const real* decay_device, const void* x, void* output, void* membrane, void* v_last,
                               cudaStream_t stream) {
  const LevelParams<real> L = checked_level_params(P, decay_device);
  if (P.N == 0) return;
  if (x == nullptr) throw std::invalid_argument("x must not be null");
  if (output == nullptr) throw std::invalid_argument("output must not be null");
  if (v_last == nullptr) throw std::invalid_argument("v_last must not be null");
  const bool vector = vector_path<real>(P.N, storage, x, output, membrane, v_last);
  const unsigned grid = grid_size(vector_blocks<real>(P.N), "multilevel_forward");
  // outside smooth mode the forward never looks at the surrogate: one variant, as on the CPU
  spikegrad::dispatch_multilevel_forward(options, [&](auto surrogate_c, auto smooth_c) {
    multilevel_forward_kernel<real, decltype(surrogate_c)::value, decltype(smooth_c)::value>
        <<<grid, kBlockThreads, 0, stream>>>(L, decay_device, P.T, P.N, P.a, P.v_init, storage, vector, x, output,
                                             membrane, v_last);
  });
  check_launch("multilevel_forward_kernel");
}

template <typename real>
void launch_multilevel_backward(const MultilevelOptions& options, Storage storage, const MultilevelParams<real>& P,
                                const real* decay_device, const void* x, const void* grad_output,
                                const void* grad_membrane, const void* grad_v_last, void* grad_x, void* grad_v_init,
                                double* grad_decay, double* grad_a, void* workspace, cudaStream_t stream) {
  const LevelParams<real> L = checked_level_params(P, decay_device);
  const bool param_grads = grad_decay != nullptr || grad_a != nullptr;
  if (param_grads) {
    if (grad_decay == nullptr) throw std::invalid_argument("grad_decay must not be null");
    if (grad_a == nullptr) throw std::invalid_argument("grad_a must not be null");
  }
  const int64_t T = P.T, N = P.N;
  if (N == 0) {
    if (!param_grads) return;
    check_cuda(cudaMemsetAsync(grad_decay, 0, sizeof(double), stream), "zeroing grad_decay");
    check_cuda(cudaMemsetAsync(grad_a, 0, sizeof(double) * static_cast<std::size_t>(T), stream), "zeroing grad_a");
    return;
  }
  if (x == nullptr) throw std::invalid_argument("x must not be null");
  if (grad_x == nullptr) throw std::invalid_argument("grad_x must not be null");
  if (grad_v_init == nullptr) throw std::invalid_argument("grad_v_init must not be null");
  if (workspace == nullptr) throw std::invalid_argument("workspace must not be null");
  auto* partials = static_cast<double*>(workspace);
  auto* checkpoints = reinterpret_cast<real*>(partials + partials_count(T + 1, N));
  const unsigned grid = grid_size(num_blocks(N), "multilevel_backward");
  spikegrad::dispatch_multilevel(options, [&](auto surrogate_c, auto smooth_c) {
    multilevel_backward_kernel<real, decltype(surrogate_c)::value, decltype(smooth_c)::value>
        <<<grid, kBlockThreads, 0, stream>>>(L, decay_device, T, N, P.a, P.v_init, options.detach_reset, param_grads,
                                             storage, x, grad_output, grad_membrane, grad_v_last, grad_x,
                                             static_cast<real*>(grad_v_init), partials, checkpoints);
  });
  check_launch("multilevel_backward_kernel");
  if (!param_grads) return;
  sum_partials(partials, num_blocks(N), T + 1, MultilevelGradients{grad_decay, grad_a}, stream);
}

// The DType launchers' parameters in the typed struct: decay rounded to the state dtype.
template <typename real>
MultilevelParams<real> typed_params(const MultilevelDeviceParams& device) {
  MultilevelParams<real> P;
  P.T = device.T;
  P.N = device.N;
  P.decay = static_cast<real>(device.decay);
  P.theta_p = static_cast<real>(device.theta_p);
  P.theta_n = static_cast<real>(device.theta_n);
  P.k_p = device.k_p;
  P.k_n = device.k_n;
  P.a = static_cast<const real*>(device.a);
  P.v_init = static_cast<const real*>(device.v_init);
  return P;
}

// x's storage when it is real itself.
template <typename real>
inline Storage native_storage() {
  return storage_of(sizeof(real) == 8 ? DType::Float64 : DType::Float32);
}

// ---------------------------------------------------------------------------------------------
// PNB partial sums (pnb_cpu.hpp): per element and level k, w = exp(-|level - h|) in float64
// inside the region. Block b of the grid (x) covers kPnbItems consecutive elements, thread i
// adding elements i, i + kBlockThreads, ... of it in order; blockIdx.y is the level.
// partials: [K * 4, num_blocks], rows (k - 1) * 4 + [S_w+, S_hw+, S_w-, S_hw-].
// ---------------------------------------------------------------------------------------------

inline constexpr int64_t kPnbItems = 16 * kBlockThreads;

inline int64_t pnb_blocks(int64_t count) { return count <= 0 ? 0 : (count + kPnbItems - 1) / kPnbItems; }

template <typename real>
__global__ void __launch_bounds__(kBlockThreads)
    pnb_partial_sums_kernel(const real* __restrict__ h, int64_t count, real theta_p, real theta_n,
                            double* __restrict__ partials) {
  __shared__ double shared[4 * kWarps];
  const int k = static_cast<int>(blockIdx.y) + 1;
  const int64_t num_partials = gridDim.x;
  const spikegrad::detail::PnbRegions<real> R = spikegrad::detail::pnb_regions(k, theta_p, theta_n);
  const double lvl_p = static_cast<double>(R.top_p), lvl_n = static_cast<double>(R.top_n);
  double sums[4] = {0.0, 0.0, 0.0, 0.0};
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * kPnbItems;
  const int64_t end = begin + kPnbItems < count ? begin + kPnbItems : count;
  for (int64_t i = begin + threadIdx.x; i < end; i += kBlockThreads) {
    const real hi = h[i];
    const double h64 = static_cast<double>(hi);
    if (spikegrad::detail::in_positive_region(hi, R)) {  // Eq. 18
      const double w = spikegrad::detail::pnb_weight(h64, lvl_p);
      sums[0] += w;
      sums[1] += h64 * w;
    }
    if (spikegrad::detail::in_negative_region(hi, R)) {  // Eq. 19
      const double w = spikegrad::detail::pnb_weight(h64, lvl_n);
      sums[2] += w;
      sums[3] += h64 * w;
    }
  }
  block_sum(sums, shared);
  if (threadIdx.x == 0) {
    for (int q = 0; q < 4; ++q) partials[((k - 1) * 4 + q) * num_partials + blockIdx.x] = sums[q];
  }
}

// partials row (k - 1) * 4 + q -> sums[k - 1][q / 2][q % 2], i.e. the same index.
template <typename real>
void launch_pnb(const PnbParams<real>& P, const real* h, double* sums, void* workspace, cudaStream_t stream) {
  validate_pnb_params(P);
  const int64_t count = P.count;
  const int K = P.K;
  if (sums == nullptr) throw std::invalid_argument("sums must not be null");
  if (count == 0) {
    check_cuda(cudaMemsetAsync(sums, 0, sizeof(double) * 4 * static_cast<std::size_t>(K), stream), "zeroing sums");
    return;
  }
  if (h == nullptr) throw std::invalid_argument("h must not be null");
  if (workspace == nullptr) throw std::invalid_argument("workspace must not be null");
  if (K > 65535) throw std::invalid_argument("k must be <= 65535 on the GPU, got " + std::to_string(K));
  const int64_t blocks = pnb_blocks(count);
  const dim3 grid(grid_size(blocks, "pnb_partial_sums"), static_cast<unsigned>(K));
  auto* partials = static_cast<double*>(workspace);
  pnb_partial_sums_kernel<real><<<grid, kBlockThreads, 0, stream>>>(h, count, P.theta_p, P.theta_n, partials);
  check_launch("pnb_partial_sums_kernel");
  sum_partials(partials, blocks, 4 * static_cast<int64_t>(K), Contiguous{sums}, stream);
}

// The DType launcher: the magnitudes are checked after the rounding to real, the message names
// the value given.
template <typename real>
void pnb_typed(const void* h, int64_t count, double theta_p_value, double theta_n_value, int K, double* sums,
               void* workspace, cudaStream_t stream) {
  if (K < 1) throw std::invalid_argument("k must be >= 1, got " + std::to_string(K));
  PnbParams<real> P;
  P.count = count;
  P.theta_p = static_cast<real>(theta_p_value);
  P.theta_n = static_cast<real>(theta_n_value);
  P.K = K;
  if (!(std::isfinite(P.theta_p) && P.theta_p > 0)) {
    throw std::invalid_argument("theta_p must be a finite magnitude > 0, got " +
                                spikegrad::detail::number_string(theta_p_value));
  }
  if (!(std::isfinite(P.theta_n) && P.theta_n > 0)) {
    throw std::invalid_argument("theta_n must be a finite magnitude > 0, got " +
                                spikegrad::detail::number_string(theta_n_value));
  }
  launch_pnb(P, static_cast<const real*>(h), sums, workspace, stream);
}

}  // namespace detail

void multilevel_forward(const MultilevelOptions& options, DType dtype, const MultilevelDeviceParams& params,
                        const void* x, void* output, void* membrane, void* v_last, Stream stream) {
  const detail::Storage storage = detail::storage_of(dtype);
  if (dtype == DType::Float64) {
    detail::launch_multilevel_forward(options, storage, detail::typed_params<double>(params),
                                      static_cast<const double*>(params.decay_device), x, output, membrane, v_last,
                                      detail::as_stream(stream));
  } else {
    detail::launch_multilevel_forward(options, storage, detail::typed_params<float>(params),
                                      static_cast<const float*>(params.decay_device), x, output, membrane, v_last,
                                      detail::as_stream(stream));
  }
}

std::size_t multilevel_backward_workspace_bytes(DType dtype, int64_t T, int64_t N) {
  if (T <= 0 || N <= 0) return 0;
  return sizeof(double) * detail::partials_count(T + 1, N) + state_size(dtype) * detail::checkpoint_count(T, N);
}

void multilevel_backward(const MultilevelOptions& options, DType dtype, const MultilevelDeviceParams& params,
                         const void* x, const void* grad_output, const void* grad_membrane, const void* grad_v_last,
                         void* grad_x, void* grad_v_init, double* grad_decay, double* grad_a, void* workspace,
                         Stream stream) {
  const detail::Storage storage = detail::storage_of(dtype);
  if (dtype == DType::Float64) {
    detail::launch_multilevel_backward(options, storage, detail::typed_params<double>(params),
                                       static_cast<const double*>(params.decay_device), x, grad_output, grad_membrane,
                                       grad_v_last, grad_x, grad_v_init, grad_decay, grad_a, workspace,
                                       detail::as_stream(stream));
  } else {
    detail::launch_multilevel_backward(options, storage, detail::typed_params<float>(params),
                                       static_cast<const float*>(params.decay_device), x, grad_output, grad_membrane,
                                       grad_v_last, grad_x, grad_v_init, grad_decay, grad_a, workspace,
                                       detail::as_stream(stream));
  }
}

std::size_t pnb_workspace_bytes(int64_t count, int K) {
  return sizeof(double) * static_cast<std::size_t>(detail::pnb_blocks(count)) * 4 *
         static_cast<std::size_t>(K < 0 ? 0 : K);
}

void pnb_partial_sums(DType dtype, const void* h, int64_t count, double theta_p, double theta_n, int K, double* sums,
                      void* workspace, Stream stream) {
  if (dtype == DType::Float64) {
    detail::pnb_typed<double>(h, count, theta_p, theta_n, K, sums, workspace, detail::as_stream(stream));
  } else if (dtype == DType::Float32) {
    detail::pnb_typed<float>(h, count, theta_p, theta_n, K, sums, workspace, detail::as_stream(stream));
  } else {
    throw std::invalid_argument("h must be float32 or float64 (the PNB sums have no float16 or bfloat16 kernel)");
  }
}

}  // namespace spikegrad::cuda

namespace spikegrad {

template <typename real>
void multilevel_forward_cuda(const MultilevelOptions& options, const MultilevelParams<real>& params,
                             const same_t<real>* x, same_t<real>* output, same_t<real>* membrane,
                             same_t<real>* v_last, const same_t<real>* decay_device, cuda::Stream stream) {
  cuda::detail::launch_multilevel_forward(options, cuda::detail::native_storage<real>(), params, decay_device, x,
                                          output, membrane, v_last, cuda::detail::as_stream(stream));
}

template <typename real>
std::size_t multilevel_backward_workspace_bytes_cuda(int64_t T, int64_t N) {
  return cuda::multilevel_backward_workspace_bytes(sizeof(real) == 8 ? cuda::DType::Float64 : cuda::DType::Float32, T,
                                                   N);
}

template <typename real>
void multilevel_backward_cuda(const MultilevelOptions& options, const MultilevelParams<real>& params,
                              const same_t<real>* x, const same_t<real>* grad_output,
                              const same_t<real>* grad_membrane, const same_t<real>* grad_v_last,
                              same_t<real>* grad_x, same_t<real>* grad_v_init, double* grad_decay, double* grad_a,
                              void* workspace, const same_t<real>* decay_device, cuda::Stream stream) {
  cuda::detail::launch_multilevel_backward(options, cuda::detail::native_storage<real>(), params, decay_device, x,
                                           grad_output, grad_membrane, grad_v_last, grad_x, grad_v_init, grad_decay,
                                           grad_a, workspace, cuda::detail::as_stream(stream));
}

template <typename real>
std::size_t pnb_workspace_bytes_cuda(int64_t count, int K) {
  return cuda::pnb_workspace_bytes(count, K);
}

template <typename real>
void pnb_partial_sums_cuda(const PnbParams<real>& params, const same_t<real>* h, double* sums, void* workspace,
                           cuda::Stream stream) {
  cuda::detail::launch_pnb(params, h, sums, workspace, cuda::detail::as_stream(stream));
}

#define SPIKEGRAD_MULTILEVEL_CUDA_INSTANCES(real)                                                                \
  template void multilevel_forward_cuda<real>(const MultilevelOptions&, const MultilevelParams<real>&, const real*, \
                                              real*, real*, real*, const real*, cuda::Stream);                    \
  template std::size_t multilevel_backward_workspace_bytes_cuda<real>(int64_t, int64_t);                         \
  template void multilevel_backward_cuda<real>(const MultilevelOptions&, const MultilevelParams<real>&,           \
                                               const real*, const real*, const real*, const real*, real*, real*,  \
                                               double*, double*, void*, const real*, cuda::Stream);               \
  template std::size_t pnb_workspace_bytes_cuda<real>(int64_t, int);                                             \
  template void pnb_partial_sums_cuda<real>(const PnbParams<real>&, const real*, double*, void*, cuda::Stream);
SPIKEGRAD_MULTILEVEL_CUDA_INSTANCES(float)
SPIKEGRAD_MULTILEVEL_CUDA_INSTANCES(double)
#undef SPIKEGRAD_MULTILEVEL_CUDA_INSTANCES

}  // namespace spikegrad

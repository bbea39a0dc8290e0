// cpp/cuda/adaptive_cuda.cu — DS-ATGO's fused forward (adaptive_cpu.hpp) on the GPU, with no host
// synchronisation (so that a forward can be captured in a CUDA graph). Per step t, in order on the
// stream:
//   1. fire + charge: fire step t-1 (o[t-1], with theta[t-1] read from device memory) and charge
//      step t from the v[t-1] it leaves in a register (at t = 0: from v_init), writing h[t] and each
//      512-neuron block's float64 sum of h in the CPU's lane order (one warp per block);
//   2. combine: one block of 256 threads adds the block sums in the canonical order (ordered_sum of
//      spikegrad/portable.hpp) and writes mean[t] = layer_mean;
//   3. deviation: each block's float64 sum of (h - mean[t])^2;
//   4. combine + step values: the same sum of those, then (one thread) std[t], theta[t], k_t by the
//      CPU's own SPIKEGRAD_HD functions (adaptive_step_values), checked on the device with the CPU's
//      messages, written to threshold[t], sg_param[t], std[t].
// After step T-1 one fire kernel writes o[T-1] and v_last. The statistics, thresholds and widths are
// the CPU's bits: each neuron's charge, deviation and fire, and the equations, are adaptive_element.hpp's
// (the CPU forward calls the same functions). Test: tests/cuda/test_cuda.py (on a GPU).
#include "common.cuh"
#include "spikegrad/adaptive_element.hpp"
#include "spikegrad/detail/parallel.hpp"  // kNeuronBlock, neuron_num_blocks: the CPU's blocks
#include "spikegrad/portable.hpp"

namespace spikegrad::cuda {
namespace detail {

// The per-512-neuron block sums are the CPU's (detail::block_sum of detail/parallel.hpp): lane l of 8
// adds the terms of neurons l, l + 8, l + 16, ... of the block in order from 0.0, then the lanes
// pairwise ((0+1) + (2+3)) + ((4+5) + (6+7)). On the GPU one warp makes one block: thread k loads,
// computes and stores neurons k, k + 32, ..., k + 480 of it (every access a whole 128-byte line per
// warp), keeping h in registers; then threads 0..7 run the 8 lanes' chains, taking the values in
// order by shuffles (neuron l + 8j lives in thread l + 8 (j mod 4), register j / 4), and add the
// lanes in the CPU's pairs. No shared memory, no __syncthreads.
inline constexpr int kStatBlock = static_cast<int>(spikegrad::kNeuronBlock);
inline constexpr int kLanes = 8;
inline constexpr int kPerThread = kStatBlock / 32;  // neurons per thread: 16
inline constexpr int kStatThreads = 256;            // 8 warps: 8 neuron blocks per CUDA block
inline constexpr int kBlocksPerCta = kStatThreads / 32;
static_assert(kStatBlock % 32 == 0 && 32 % kLanes == 0, "a warp's threads hold whole lane positions");

inline unsigned stat_grid_size(int64_t num_neuron_blocks) {
  return grid_size((num_neuron_blocks + kBlocksPerCta - 1) / kBlocksPerCta, "adaptive_forward");
}

// The neuron block of this warp: its first neuron n0 and its size nb (0 past the last block).
struct WarpBlock {
  int64_t b, n0;
  int nb;
};
__device__ __forceinline__ WarpBlock warp_block(int64_t N) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * kBlocksPerCta + threadIdx.x / 32;
  const int64_t n0 = b * kStatBlock;
  const int64_t left = N - n0;
  return {b, n0, static_cast<int>(left <= 0 ? 0 : (left < kStatBlock ? left : kStatBlock))};
}

// The block's float64 sum of term(values[i]) (the value of neuron threadIdx % 32 + 32 i; values past
// nb are never added) in block_sum's order; thread 0 of the warp gets it. The values are shuffled in
// the state dtype (one 32-bit shuffle per value for float) and each thread makes the terms it adds.
// Every thread of the warp calls it.
template <typename real, typename Term>
__device__ __forceinline__ double warp_block_sum(const real (&values)[kPerThread], int nb, Term term) {
  const int lane = static_cast<int>(threadIdx.x % kLanes);
  double acc = 0.0;  // lane `lane`'s chain (threads 8..31 repeat those of threads 0..7)
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
#pragma unroll
    for (int q = 0; q < 32 / kLanes; ++q) {  // j = 4 i + q: neuron lane + 8 j = (lane + 8 q) + 32 i
      const real value = __shfl_sync(0xffffffffu, values[i], lane + kLanes * q);
      if (lane + kLanes * q + 32 * i < nb) acc += term(value);
    }
  }
  // the lanes in the CPU's pairs: ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) into thread 0
  acc += __shfl_down_sync(0xffffffffu, acc, 1);
  acc += __shfl_down_sync(0xffffffffu, acc, 2);
  acc += __shfl_down_sync(0xffffffffu, acc, 4);
  return acc;
}

// Step 1 (fire_then_charge_blocks of the CPU): for t > 0, o[t-1] = H(h[t-1] - theta[t-1]) and
// v = reset(h[t-1], s) (docs/spec.md §3, 4); for t = 0, v = v_init (0 where v_init is null). Then
// h[t] = charge(v, x[t]) (docs/spec.md §1) and the block's sum of h[t]. h_prev and h may be the same array
// (h[t] over h[t-1] without the membrane): a thread loads all its h_prev[n] before it writes any
// h[n], and no thread touches another's neurons, so they are not __restrict__.
template <typename real, Charge C, Reset R>
__global__ void __launch_bounds__(kStatThreads)
    adaptive_fire_charge_kernel(int64_t N, int64_t t, const real* h_prev, const real* __restrict__ v_init,
                                const real* __restrict__ x_t, real* __restrict__ o_prev, real* h,
                                const real* __restrict__ threshold, real lam, const real* __restrict__ decay_device,
                                real v_reset, double* __restrict__ block_sums) {
  if (decay_device != nullptr) lam = *decay_device;  // a learnable decay, never read on the host
  const WarpBlock W = warp_block(N);
  const int k = static_cast<int>(threadIdx.x % 32);
  const real theta = t > 0 ? threshold[t - 1] : static_cast<real>(0);  // written by step t-1's step kernel
  real x_own[kPerThread], previous[kPerThread];
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {  // the loads first
    const int e = k + 32 * i;
    x_own[i] = previous[i] = static_cast<real>(0);
    if (e < W.nb) {
      const int64_t n = W.n0 + e;
      x_own[i] = x_t[n];
      previous[i] = t > 0 ? h_prev[n] : (v_init != nullptr ? v_init[n] : static_cast<real>(0));
    }
  }
  real h_own[kPerThread];
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    const int e = k + 32 * i;
    h_own[i] = static_cast<real>(0);
    if (e < W.nb) {
      const int64_t n = W.n0 + e;
      real v = previous[i];  // v[-1] at t = 0
      if (t > 0) {
        real o;
        v = spikegrad::detail::adaptive_element_fire<real, R>(previous[i], o, theta, v_reset);
        o_prev[n] = o;
      }
      const real hn = spikegrad::detail::adaptive_element_charge<real, C>(v, x_own[i], lam, v_reset);
      h[n] = hn;
      h_own[i] = hn;
    }
  }
  const double sum = warp_block_sum(h_own, W.nb, [](real value) { return static_cast<double>(value); });
  if (k == 0 && W.nb > 0) block_sums[W.b] = sum;
}

// Step 3: the block's sum of the squared deviations around mean[t] (written by step 2), in
// block_sum_squared_deviations' order (the same lanes and pairs).
template <typename real>
__global__ void __launch_bounds__(kStatThreads)
    adaptive_deviation_kernel(int64_t N, const real* __restrict__ h, const double* __restrict__ mean_t,
                              double* __restrict__ block_sums) {
  const WarpBlock W = warp_block(N);
  const int k = static_cast<int>(threadIdx.x % 32);
  const double mean = *mean_t;
  real h_own[kPerThread];
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) h_own[i] = k + 32 * i < W.nb ? h[W.n0 + k + 32 * i] : static_cast<real>(0);
  const double sum = warp_block_sum(h_own, W.nb, [mean](real value) {
    return spikegrad::detail::adaptive_element_deviation(value, mean);
  });
  if (k == 0 && W.nb > 0) block_sums[W.b] = sum;
}

// Step 2: mean[t] = layer_mean(sum of h[t], N).
__global__ void __launch_bounds__(kBlockThreads)
    adaptive_mean_kernel(const double* __restrict__ block_sums, int64_t num_blocks, int64_t N,
                         double* __restrict__ mean_t) {
  const double sum = block_ordered_sum(block_sums, num_blocks);
  if (threadIdx.x == 0) *mean_t = spikegrad::layer_mean(sum, N);
}

__device__ __forceinline__ bool finite_value(double value) { return value - value == 0.0; }  // not NaN or Inf

// check_adaptive_step of the CPU on the device: the same conditions, and its message (with t and the
// statistics) printed before the device-side assertion.
template <typename real>
__device__ void check_step_on_device(const AdaptiveStepValues<real>& step, double mean, double std_dev,
                                     double v_th, int64_t t) {
  if (!finite_value(static_cast<double>(step.threshold)) || !finite_value(static_cast<double>(step.width))) {
    printf("spikegrad: the adaptive threshold or TGO width is not finite at t = %lld (mean(h) = %.9g, std(h) = "
           "%.9g, v_th = %.9g): the layer's membranes contain NaN or Inf (from x or v_init), or are so large "
           "that the float64 statistic overflows: DS-ATGO's threshold is undefined\n",
           static_cast<long long>(t), mean, std_dev, v_th);
    device_check_failed("the adaptive threshold or TGO width is not finite");
  }
  if (!(step.width > 0)) {
    printf("spikegrad: the TGO width k_t = width * (1 + tanh(d_t - v_th)) rounds to 0 at t = %lld (mean(h) = "
           "%.9g, std(h) = %.9g, v_th = %.9g): d_t is too far below v_th; use a smaller v_th or tgo=False\n",
           static_cast<long long>(t), mean, std_dev, v_th);
    device_check_failed("the TGO width k_t rounds to 0");
  }
}

// Step 4: std[t] = layer_std(sum of squared deviations, N), then theta[t] and k_t from mean[t] and
// std[t] (adaptive_step_values, Eq. 5 and 7), checked, written to threshold[t] and sg_param[t].
template <typename real>
__global__ void __launch_bounds__(kBlockThreads)
    adaptive_step_kernel(const double* __restrict__ block_sums, int64_t num_blocks, AdaptiveParams<real> P,
                         const real* __restrict__ decay_device, int64_t t, const double* __restrict__ mean_t, double* __restrict__ std_t, real* __restrict__ threshold,
                         real* __restrict__ sg_param) {
  const double sum_squares = block_ordered_sum(block_sums, num_blocks);
  if (threadIdx.x == 0) {
    if (decay_device != nullptr) {  // the estimated threshold uses lam
      P.decay = *decay_device;
      check_decay(P.decay);
    }
    const double mean = *mean_t;
    const double std_dev = spikegrad::layer_std(sum_squares, P.N);
    const AdaptiveStepValues<real> step = spikegrad::adaptive_step_values(P, mean, std_dev);  // Eq. 5, 7
    check_step_on_device(step, mean, std_dev, P.v_th, t);
    *std_t = std_dev;
    threshold[t] = step.threshold;
    sg_param[t] = step.width;
  }
}

// After step T-1 (fire_blocks of the CPU): o = H(h - theta[T-1]), v_last = reset(h, s).
template <typename real, Reset R>
__global__ void __launch_bounds__(kBlockThreads)
    adaptive_fire_kernel(int64_t N, const real* __restrict__ h, real* __restrict__ v, real* __restrict__ o,
                         const real* __restrict__ theta_last, real v_reset) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kBlockThreads + threadIdx.x;
  if (n >= N) return;
  real o_n;
  v[n] = spikegrad::detail::adaptive_element_fire<real, R>(h[n], o_n, *theta_last, v_reset);  // docs/spec.md §3, 4
  o[n] = o_n;
}

// P: v_init a device pointer (or nullptr: zeros). decay_device: lam as a device scalar or nullptr.
template <typename real>
void launch_adaptive_forward(const NeuronOptions& options, AdaptiveParams<real> P, const real* decay_device,
                             const real* x, real* output, real* membrane, real* v_last, real* threshold,
                             real* sg_param, double* mean, double* std_dev, real* h_scratch, double* block_sums,
                             cudaStream_t stream) {
  // a device decay is read and checked by the kernels
  if (decay_device != nullptr) P.decay = static_cast<real>(0);
  validate_adaptive_params(P);
  if (options.scale != Scale::Absolute) {
    throw std::invalid_argument("the adaptive threshold uses scale='absolute', got scale='" +
                                std::string(to_string(options.scale)) + "'");
  }
  if (options.smooth) throw std::invalid_argument("the adaptive threshold has no smooth mode");
  if (x == nullptr || output == nullptr || v_last == nullptr || threshold == nullptr || sg_param == nullptr ||
      mean == nullptr || std_dev == nullptr || block_sums == nullptr || (membrane == nullptr && h_scratch == nullptr)) {
    throw std::invalid_argument("adaptive_forward (CUDA): a required buffer is null");
  }
  const int64_t T = P.T, N = P.N;
  const int64_t stat_blocks = spikegrad::neuron_num_blocks(N);
  const unsigned stat_grid = stat_grid_size(stat_blocks);
  const unsigned fire_grid = grid_size(num_blocks(N), "adaptive_forward");
  auto h_row = [&](int64_t t) -> real* { return membrane != nullptr ? membrane + t * N : h_scratch; };
  dispatch_charge(options.charge, [&](auto charge_c) {
    dispatch_reset(options.reset, [&](auto reset_c) {
      constexpr Charge C = decltype(charge_c)::value;
      constexpr Reset R = decltype(reset_c)::value;
      for (int64_t t = 0; t < T; ++t) {
        const real* h_prev = t == 0 ? nullptr : h_row(t - 1);
        real* o_prev = t == 0 ? nullptr : output + (t - 1) * N;
        real* h = h_row(t);
        adaptive_fire_charge_kernel<real, C, R><<<stat_grid, kStatThreads, 0, stream>>>(
            N, t, h_prev, P.v_init, x + t * N, o_prev, h, threshold, P.decay, decay_device, P.v_reset, block_sums);
        check_launch("adaptive_fire_charge_kernel");
        adaptive_mean_kernel<<<1, kBlockThreads, 0, stream>>>(block_sums, stat_blocks, N, mean + t);
        check_launch("adaptive_mean_kernel");
        adaptive_deviation_kernel<real><<<stat_grid, kStatThreads, 0, stream>>>(N, h, mean + t, block_sums);
        check_launch("adaptive_deviation_kernel");
        adaptive_step_kernel<real><<<1, kBlockThreads, 0, stream>>>(block_sums, stat_blocks, P, decay_device, t,
                                                                     mean + t,
                                                                     std_dev + t, threshold, sg_param);
        check_launch("adaptive_step_kernel");
      }
      adaptive_fire_kernel<real, R><<<fire_grid, kBlockThreads, 0, stream>>>(
          N, h_row(T - 1), v_last, output + (T - 1) * N, threshold + (T - 1), P.v_reset);
      check_launch("adaptive_fire_kernel");
    });
  });
}

}  // namespace detail

// The per-block float64 sums of one pass (the statistics themselves go straight to mean and std).
std::size_t adaptive_workspace_bytes(int64_t N) {
  return sizeof(double) * static_cast<std::size_t>(spikegrad::neuron_num_blocks(N));
}

namespace detail {

// The DType launcher's parameters in the typed struct: decay and v_reset rounded to real.
template <typename real>
AdaptiveParams<real> typed_params(const AdaptiveDeviceParams& device) {
  AdaptiveParams<real> P;
  P.T = device.T;
  P.N = device.N;
  P.decay = static_cast<real>(device.decay);
  P.v_reset = static_cast<real>(device.v_reset);
  P.v_init = static_cast<const real*>(device.v_init);
  P.threshold_mode = device.threshold_mode == 1 ? ThresholdMode::Estimated : ThresholdMode::True;
  P.f_c = device.f_c;
  P.v_th = device.v_th;
  P.tgo = device.tgo;
  P.tgo_driver = device.tgo_driver == 1 ? TgoDriver::Threshold : TgoDriver::Std;
  P.width = device.width;
  return P;
}

template <typename real>
void adaptive_forward_typed(const NeuronOptions& options, const AdaptiveDeviceParams& device, const void* x,
                            void* output, void* membrane, void* v_last, void* threshold, void* sg_param,
                            double* mean, double* std_dev, void* h_scratch, void* workspace, cudaStream_t stream) {
  launch_adaptive_forward(options, typed_params<real>(device), static_cast<const real*>(device.decay_device),
                          static_cast<const real*>(x), static_cast<real*>(output), static_cast<real*>(membrane),
                          static_cast<real*>(v_last), static_cast<real*>(threshold), static_cast<real*>(sg_param), mean,
                          std_dev, static_cast<real*>(h_scratch), static_cast<double*>(workspace), stream);
}

}  // namespace detail

void adaptive_forward(const NeuronOptions& options, DType dtype, const AdaptiveDeviceParams& params, const void* x,
                      void* output, void* membrane, void* v_last, void* threshold, void* sg_param, double* mean,
                      double* std_dev, void* h_scratch, void* workspace, Stream stream) {
  const cudaStream_t s = detail::as_stream(stream);
  if (dtype == DType::Float64) {
    detail::adaptive_forward_typed<double>(options, params, x, output, membrane, v_last, threshold, sg_param, mean,
                                           std_dev, h_scratch, workspace, s);
  } else if (dtype == DType::Float32) {
    detail::adaptive_forward_typed<float>(options, params, x, output, membrane, v_last, threshold, sg_param, mean,
                                          std_dev, h_scratch, workspace, s);
  } else {
    throw std::invalid_argument("x must be float32 or float64 for the adaptive threshold");
  }
}

}  // namespace spikegrad::cuda

namespace spikegrad {

template <typename real>
std::size_t adaptive_forward_workspace_bytes_cuda(int64_t N) {
  if (N <= 0) return 0;
  return cuda::adaptive_workspace_bytes(N) + sizeof(real) * static_cast<std::size_t>(N);
}

template <typename real>
void adaptive_forward_cuda(const NeuronOptions& options, const AdaptiveParams<real>& params, const same_t<real>* x,
                           same_t<real>* output, same_t<real>* membrane, same_t<real>* v_last,
                           same_t<real>* threshold, same_t<real>* sg_param, double* mean, double* std_dev,
                           void* workspace, const same_t<real>* decay_device, cuda::Stream stream) {
  double* block_sums = static_cast<double*>(workspace);
  real* h_scratch = workspace == nullptr || params.N < 1
                        ? nullptr
                        : reinterpret_cast<real*>(block_sums + spikegrad::neuron_num_blocks(params.N));
  cuda::detail::launch_adaptive_forward(options, params, decay_device, x, output, membrane, v_last, threshold,
                                        sg_param, mean, std_dev, h_scratch, block_sums,
                                        cuda::detail::as_stream(stream));
}

#define SPIKEGRAD_ADAPTIVE_CUDA_INSTANCES(real)                                                                     \
  template std::size_t adaptive_forward_workspace_bytes_cuda<real>(int64_t);                                        \
  template void adaptive_forward_cuda<real>(const NeuronOptions&, const AdaptiveParams<real>&, const real*, real*,  \
                                            real*, real*, real*, real*, double*, double*, void*, const real*,       \
                                            cuda::Stream);
SPIKEGRAD_ADAPTIVE_CUDA_INSTANCES(float)
SPIKEGRAD_ADAPTIVE_CUDA_INSTANCES(double)
#undef SPIKEGRAD_ADAPTIVE_CUDA_INSTANCES

}  // namespace spikegrad

// cpp/cuda/adaptive_cuda.cu — DS-ATGO's fused forward (adaptive_cpu.hpp) on the GPU. Time-outer:
// per step a charge kernel (h and each 512-neuron block's float64 sum in the CPU's lane order),
// one thread adding the block sums in block order (the CPU's combine_block_sums), the same for the
// squared deviations, then theta[t] and k_t on the host with the CPU's own functions, then a fire
// kernel. The statistics are the CPU's bits. Test: tests/test_cuda.py (on a GPU).
#include <vector>

#include "common.cuh"
#include "spikegrad/adaptive_cpu.hpp"

namespace spikegrad::cuda {
namespace detail {

// One CUDA block per kNeuronBlock neurons of the CPU kernels: the sums must be the CPU's blocks.
inline constexpr int kStatBlock = static_cast<int>(spikegrad::kNeuronBlock);
inline constexpr int kLanes = 8;

// block_sum of neuron_cpu.hpp over the terms in shared memory: lane l adds terms l, l + 8, ... in
// order from 0.0; then ((0+1) + (2+3)) + ((4+5) + (6+7)). Thread 0 returns the block's sum.
__device__ __forceinline__ double lane_ordered_block_sum(const double* terms, int n) {
  __shared__ double lane_sums[kLanes];
  if (threadIdx.x < kLanes) {
    double acc = 0.0;
    for (int i = static_cast<int>(threadIdx.x); i < n; i += kLanes) acc += terms[i];
    lane_sums[threadIdx.x] = acc;
  }
  __syncthreads();
  const double* a = lane_sums;
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

template <typename real, Charge C>
__global__ void __launch_bounds__(kStatBlock)
    adaptive_charge_kernel(int64_t N, const real* __restrict__ x_t, const real* __restrict__ v, real* __restrict__ h,
                           real lam, real v_reset, double* __restrict__ block_sums) {
  __shared__ double terms[kStatBlock];
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kStatBlock;
  const int nb = static_cast<int>(N - n0 < kStatBlock ? N - n0 : kStatBlock);
  const int i = static_cast<int>(threadIdx.x);
  if (i < nb) {
    const real hi = charge<C>(v[n0 + i], x_t[n0 + i], lam, v_reset);  // SPEC 1
    h[n0 + i] = hi;
    terms[i] = static_cast<double>(hi);
  }
  __syncthreads();
  const double sum = lane_ordered_block_sum(terms, nb);
  if (i == 0) block_sums[blockIdx.x] = sum;
}

// The squared deviations around mean = sum / N (layer_mean's division, the same IEEE operation).
template <typename real>
__global__ void __launch_bounds__(kStatBlock)
    adaptive_deviation_kernel(int64_t N, const real* __restrict__ h, const double* __restrict__ sum,
                              double* __restrict__ block_sums) {
  __shared__ double terms[kStatBlock];
  const double mean = *sum / static_cast<double>(N);
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kStatBlock;
  const int nb = static_cast<int>(N - n0 < kStatBlock ? N - n0 : kStatBlock);
  const int i = static_cast<int>(threadIdx.x);
  if (i < nb) {
    const double d = static_cast<double>(h[n0 + i]) - mean;
    terms[i] = d * d;
  }
  __syncthreads();
  const double sum_squares = lane_ordered_block_sum(terms, nb);
  if (i == 0) block_sums[blockIdx.x] = sum_squares;
}

// combine_block_sums: the block sums added in block order from 0, by one thread: a dependent
// chain of num_blocks float64 additions (the cost docs/cuda.md discusses). The block's other
// threads stage tiles of the sums in shared memory, so that the chain waits on additions, not
// on global loads.
inline constexpr int kCombineThreads = 1024;
inline constexpr int kCombineTile = 4096;

__global__ void __launch_bounds__(kCombineThreads)
    combine_block_sums_kernel(const double* __restrict__ block_sums, int64_t num_blocks,
                              double* __restrict__ total) {
  __shared__ double tile[kCombineTile];
  double sum = 0.0;
  for (int64_t b0 = 0; b0 < num_blocks; b0 += kCombineTile) {
    const int count = static_cast<int>(num_blocks - b0 < kCombineTile ? num_blocks - b0 : kCombineTile);
    for (int i = static_cast<int>(threadIdx.x); i < count; i += kCombineThreads) tile[i] = block_sums[b0 + i];
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int i = 0; i < count; ++i) sum += tile[i];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) *total = sum;
}

// fire_blocks: o = H(h - theta), v = reset(h, s); thread 0 records the step's values.
template <typename real, Reset R>
__global__ void __launch_bounds__(kBlockThreads)
    adaptive_fire_kernel(int64_t N, const real* __restrict__ h, real* __restrict__ v, real* __restrict__ o,
                         real theta, real width, real v_reset, double mean, double std_dev, int64_t t,
                         real* __restrict__ threshold, real* __restrict__ sg_param, double* __restrict__ mean_out,
                         double* __restrict__ std_out) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kBlockThreads + threadIdx.x;
  if (n == 0) {
    threshold[t] = theta;
    sg_param[t] = width;
    mean_out[t] = mean;
    std_out[t] = std_dev;
  }
  if (n >= N) return;
  const real hn = h[n];
  const real z = spike_argument<Scale::Absolute>(hn, theta);  // SPEC 3, absolute scale
  const real s = heaviside(z);
  o[n] = output<Scale::Absolute>(s, theta);
  v[n] = reset<R>(hn, s, theta, v_reset);  // SPEC 4
}

template <typename real>
void adaptive_forward_typed(const NeuronOptions& options, const AdaptiveDeviceParams& device, const real* x,
                            real* output, real* membrane, real* v_last, real* threshold, real* sg_param,
                            double* mean, double* std_dev, real* h_scratch, void* workspace, cudaStream_t stream) {
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
  validate_adaptive_params(P);
  if (options.scale != Scale::Absolute) {
    throw std::invalid_argument("the adaptive threshold uses scale='absolute', got scale='" +
                                std::string(to_string(options.scale)) + "'");
  }
  if (options.smooth) throw std::invalid_argument("the adaptive threshold has no smooth mode");
  if (x == nullptr || output == nullptr || v_last == nullptr || threshold == nullptr || sg_param == nullptr ||
      mean == nullptr || std_dev == nullptr || workspace == nullptr || (membrane == nullptr && h_scratch == nullptr)) {
    throw std::invalid_argument("adaptive_forward (CUDA): a required buffer is null");
  }
  const int64_t T = P.T, N = P.N;
  const int64_t stat_blocks = spikegrad::neuron_num_blocks(N);
  auto* block_sums = static_cast<double*>(workspace);
  double* totals = block_sums + stat_blocks;  // [sum, sum of squared deviations]
  const unsigned stat_grid = grid_size(stat_blocks, "adaptive_forward");
  const unsigned fire_grid = grid_size(num_blocks(N), "adaptive_forward");
  check_cuda(cudaMemcpyAsync(v_last, P.v_init, sizeof(real) * static_cast<std::size_t>(N), cudaMemcpyDeviceToDevice,
                             stream),
             "copying v_init");
  double host_totals[2];
  for (int64_t t = 0; t < T; ++t) {
    real* h = membrane != nullptr ? membrane + t * N : h_scratch;
    dispatch_charge(options.charge, [&](auto c) {
      adaptive_charge_kernel<real, decltype(c)::value>
          <<<stat_grid, kStatBlock, 0, stream>>>(N, x + t * N, v_last, h, P.decay, P.v_reset, block_sums);
    });
    check_launch("adaptive_charge_kernel");
    combine_block_sums_kernel<<<1, kCombineThreads, 0, stream>>>(block_sums, stat_blocks, totals);
    check_launch("combine_block_sums_kernel");
    adaptive_deviation_kernel<real><<<stat_grid, kStatBlock, 0, stream>>>(N, h, totals, block_sums);
    check_launch("adaptive_deviation_kernel");
    combine_block_sums_kernel<<<1, kCombineThreads, 0, stream>>>(block_sums, stat_blocks, totals + 1);
    check_launch("combine_block_sums_kernel");
    check_cuda(cudaMemcpyAsync(host_totals, totals, sizeof host_totals, cudaMemcpyDeviceToHost, stream),
               "copying the statistics to the host");
    check_cuda(cudaStreamSynchronize(stream), "synchronizing the stream");
    const double step_mean = layer_mean(host_totals[0], N);
    const double step_std = layer_std(host_totals[1], N);
    const AdaptiveStepValues<real> step = adaptive_step_values(P, step_mean, step_std);  // Eq. 5, 7
    check_adaptive_step(P, step, step_mean, step_std, t);
    dispatch_reset(options.reset, [&](auto r) {
      adaptive_fire_kernel<real, decltype(r)::value><<<fire_grid, kBlockThreads, 0, stream>>>(
          N, h, v_last, output + t * N, step.threshold, step.width, P.v_reset, step_mean, step_std, t, threshold,
          sg_param, mean, std_dev);
    });
    check_launch("adaptive_fire_kernel");
  }
}

}  // namespace detail

std::size_t adaptive_workspace_bytes(int64_t N) {
  return sizeof(double) * (static_cast<std::size_t>(spikegrad::neuron_num_blocks(N)) + 2);
}

void adaptive_forward(const NeuronOptions& options, DType dtype, const AdaptiveDeviceParams& params, const void* x,
                      void* output, void* membrane, void* v_last, void* threshold, void* sg_param, double* mean,
                      double* std_dev, void* h_scratch, void* workspace, Stream stream) {
  const cudaStream_t s = detail::as_stream(stream);
  if (dtype == DType::Float64) {
    using real = double;
    detail::adaptive_forward_typed<real>(options, params, static_cast<const real*>(x), static_cast<real*>(output),
                                         static_cast<real*>(membrane), static_cast<real*>(v_last),
                                         static_cast<real*>(threshold), static_cast<real*>(sg_param), mean, std_dev,
                                         static_cast<real*>(h_scratch), workspace, s);
  } else if (dtype == DType::Float32) {
    using real = float;
    detail::adaptive_forward_typed<real>(options, params, static_cast<const real*>(x), static_cast<real*>(output),
                                         static_cast<real*>(membrane), static_cast<real*>(v_last),
                                         static_cast<real*>(threshold), static_cast<real*>(sg_param), mean, std_dev,
                                         static_cast<real*>(h_scratch), workspace, s);
  } else {
    throw std::invalid_argument("x must be float32 or float64 for the adaptive threshold");
  }
}

}  // namespace spikegrad::cuda

// cpp/cuda/neuron_cuda.cuh — the single-level neuron (docs/spec.md §1-5) and its BPTT backward (docs/spec.md §8)
// on the GPU: kVector<real> neurons per thread, fused over T, each step the CPU's own
// forward_element / backward_element (neuron_element.hpp). The kernels are compiled per charge,
// reset, scale and mode; the surrogate is a run-time argument, switched per element (the same
// value for every thread of a launch, so the switch never diverges). The launchers are
// instantiated per state dtype and direction by spikegrad_instance_sources
// (cmake/SpikegradInstances.cmake); float16 and bfloat16 storage run the float kernels.
// Test: tests/cuda/test_cuda.py (on a GPU).
#pragma once

#include <algorithm>

#include "common.cuh"
#include "spikegrad/neuron_element.hpp"
#include "spikegrad/neuron_params.hpp"

namespace spikegrad::cuda::detail {

// Thread i handles the kVector<real> consecutive neurons from n = i * kVector<real> (common.cuh):
// a warp's loads and stores of one step are contiguous, 16 bytes a thread. The forward goes in
// chunks of kChunkSteps steps with unrolled loops, so that a chunk's inputs load together.
// Thread 0 checks threshold and sg_param on the device (common.cuh, check_neuron_parameters).

// The start of every neuron kernel: lam from the device scalar of a learnable decay (when given),
// then thread 0 of block 0 checks the parameters that live on the device.
template <typename real, Scale S>
__device__ __forceinline__ void resolve_neuron_parameters(NeuronParams<real>& P, const real* decay_device) {
  if (decay_device != nullptr) P.decay = *decay_device;
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    check_decay(P.decay);
    check_neuron_parameters(P.threshold, P.sg_param, P.T, S == Scale::Absolute);
  }
}

template <typename real, Charge C, Reset R, Scale S, bool Smooth>
__global__ void __launch_bounds__(kBlockThreads)
    neuron_forward_kernel(NeuronParams<real> P, const real* __restrict__ decay_device, Surrogate g, Storage storage,
                          bool vector,
                          const void* __restrict__ x,
                          void* __restrict__ output, void* __restrict__ membrane, void* __restrict__ v_last) {
  constexpr int V = kVector<real>;
  const int64_t N = P.N, T = P.T;
  resolve_neuron_parameters<real, S>(P, decay_device);
  const int64_t first = (static_cast<int64_t>(blockIdx.x) * kBlockThreads + threadIdx.x) * V;
  if (first >= N) return;
  real v[V];
#pragma unroll
  for (int j = 0; j < V; ++j) v[j] = (P.v_init != nullptr && first + j < N) ? P.v_init[first + j] : static_cast<real>(0);
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
        const real theta = P.threshold[t], p = P.sg_param[t];
        real out[V], h[V];
#pragma unroll
        for (int j = 0; j < V; ++j) {
          const spikegrad::detail::ForwardElement<real> e =
              spikegrad::detail::forward_element<real, C, R, S, Smooth>(xs[k][j], v[j], P.decay, P.v_reset, theta, g, p);
          out[j] = e.output;
          h[j] = e.membrane;
          v[j] = e.v;
        }
        store_neurons<real>(output, t * N, first, N, vector, storage, out);
        if (membrane != nullptr) store_neurons<real>(membrane, t * N, first, N, vector, storage, h);
      }
    }
  }
  store_neurons<real>(v_last, 0, first, N, vector, storage, v);
}

// Two blocks per multiprocessor at least: the compiler keeps the backward within 128 registers a
// thread (it takes ~166 unbounded, with a few spills bounded), so that two blocks' loads are in
// flight on each multiprocessor. (MinBlocks: tools/cuda_kernel_designs.cu times 1 and 2.)
inline constexpr int kBackwardBlocksPerSM = 2;

// The backward, kVector<real> neurons per thread (as the forward): forward again to the start of
// the last chunk of kBackwardChunkSteps steps (writing the membrane at each chunk start but the
// first and last to `checkpoints`, [num_chunks - 2, N]), then per chunk in reverse: load its x and
// grad_output rows (16-byte accesses, all in flight together), recompute its v[t-1] from its start,
// and run backward_element in reverse. The chunk lives in registers (the loops over its steps and
// a thread's neurons are unrolled): measured on an H200 at T = 8, N = 2^24, float32, this ran at
// 1.14x the 12-byte floor, against 3.35x for the same loop with the chunk in shared memory and
// one neuron per thread (tools/cuda_kernel_designs.cu, docs/performance.md).
// With param_grads, per step the block sums c_theta and c_p in float64 into partials[1 + t] and
// partials[1 + T + t] (each thread first adds its own neurons' contributions in order, then
// block_sum's tree, for all the steps of a chunk at once: one barrier per chunk); c_lam is summed
// per thread over t (from T - 1 down), then per block into partials[0]. partials:
// [2T + 1, gridDim.x]. Threads past N take part with zero contributions. Without param_grads
// (fixed parameters, the common case) no sum is made.
template <typename real, Charge C, Reset R, Scale S, bool Smooth, int MinBlocks = kBackwardBlocksPerSM>
__global__ void __launch_bounds__(kBlockThreads, MinBlocks)
    neuron_backward_kernel(NeuronParams<real> P, const real* __restrict__ decay_device, Surrogate g, bool detach_reset,
                           bool param_grads, Storage storage, bool vector, const void* __restrict__ x,
                           const void* __restrict__ grad_output, const void* __restrict__ grad_membrane,
                           const void* __restrict__ grad_v_last, void* __restrict__ grad_x,
                           real* __restrict__ grad_v_init, double* __restrict__ partials,
                           real* __restrict__ checkpoints) {
  constexpr int V = kVector<real>;
  constexpr int kSteps = kBackwardChunkSteps<real>;
  __shared__ double shared[2 * kSteps * kWarps];
  const int64_t N = P.N, T = P.T;
  const int64_t first = (static_cast<int64_t>(blockIdx.x) * kBlockThreads + threadIdx.x) * V;
  const bool active = first < N;
  const int64_t num_blocks = gridDim.x;
  const int64_t num_chunks = (T + kSteps - 1) / kSteps;
  const real zero = static_cast<real>(0);
  resolve_neuron_parameters<real, S>(P, decay_device);
  auto exists = [&](int j) { return active && first + j < N; };

  real v[V];
  auto initial_membrane = [&] {  // v[-1]; a null v_init: zeros
#pragma unroll
    for (int j = 0; j < V; ++j) v[j] = (exists(j) && P.v_init != nullptr) ? P.v_init[first + j] : zero;
  };
  initial_membrane();
  if (active) {
    for (int64_t c = 0; c + 1 < num_chunks; ++c) {
      if (c > 0) {
#pragma unroll
        for (int j = 0; j < V; ++j) {
          if (exists(j)) checkpoints[(c - 1) * N + first + j] = v[j];
        }
      }
#pragma unroll
      for (int k = 0; k < kSteps; ++k) {
        const int64_t t = c * kSteps + k;  // every step of a chunk before the last exists
        real xs[V];
        load_neurons<real>(x, t * N, first, N, vector, storage, xs);
        const real theta = P.threshold[t], p = P.sg_param[t];
#pragma unroll
        for (int j = 0; j < V; ++j) {
          v[j] = spikegrad::detail::forward_element<real, C, R, S, Smooth>(xs[j], v[j], P.decay, P.v_reset, theta, g,
                                                                           p).v;
        }
      }
    }
  }

  real g_v[V];
#pragma unroll
  for (int j = 0; j < V; ++j) g_v[j] = zero;
  if (active && grad_v_last != nullptr) load_neurons<real>(grad_v_last, 0, first, N, vector, storage, g_v);
  double lam_sum = 0.0;
  for (int64_t c = num_chunks - 1; c >= 0; --c) {
    const int64_t t0 = c * kSteps;
    const int steps = static_cast<int>(T - t0 < kSteps ? T - t0 : kSteps);
    if (c + 1 < num_chunks) {
      if (c == 0) {
        initial_membrane();
      } else {
#pragma unroll
        for (int j = 0; j < V; ++j) v[j] = exists(j) ? checkpoints[(c - 1) * N + first + j] : zero;
      }
    }
    real xs[kSteps][V], g_out[kSteps][V], v_prev[kSteps][V];
#pragma unroll
    for (int k = 0; k < kSteps; ++k) {  // the chunk's rows, loaded together
#pragma unroll
      for (int j = 0; j < V; ++j) xs[k][j] = g_out[k][j] = zero;
      if (active && k < steps) {
        load_neurons<real>(x, (t0 + k) * N, first, N, vector, storage, xs[k]);
        if (grad_output != nullptr) load_neurons<real>(grad_output, (t0 + k) * N, first, N, vector, storage, g_out[k]);
      }
    }
#pragma unroll
    for (int k = 0; k < kSteps; ++k) {
      if (k < steps) {
        const real theta = P.threshold[t0 + k], p = P.sg_param[t0 + k];
#pragma unroll
        for (int j = 0; j < V; ++j) {
          v_prev[k][j] = v[j];
          v[j] = spikegrad::detail::forward_element<real, C, R, S, Smooth>(xs[k][j], v[j], P.decay, P.v_reset,
                                                                           theta, g, p).v;
        }
      }
    }
    double sums[2 * kSteps];  // c_theta[k], then c_p[k]: this thread's neurons
#pragma unroll
    for (int k = kSteps - 1; k >= 0; --k) {
      sums[k] = sums[kSteps + k] = 0.0;
      if (k < steps) {
        const int64_t t = t0 + k;
        const real theta = P.threshold[t], p = P.sg_param[t];
        real g_mem[V];
#pragma unroll
        for (int j = 0; j < V; ++j) g_mem[j] = zero;
        if (active && grad_membrane != nullptr) load_neurons<real>(grad_membrane, t * N, first, N, vector, storage, g_mem);
        real gx[V];
#pragma unroll
        for (int j = 0; j < V; ++j) {
          const spikegrad::detail::BackwardElement<real> e =
              detach_reset ? spikegrad::detail::backward_element<real, C, R, S, Smooth, true>(
                                 xs[k][j], v_prev[k][j], g_out[k][j], g_mem[j], g_v[j], P.decay, P.v_reset, theta, g, p)
                           : spikegrad::detail::backward_element<real, C, R, S, Smooth, false>(
                                 xs[k][j], v_prev[k][j], g_out[k][j], g_mem[j], g_v[j], P.decay, P.v_reset, theta, g, p);
          g_v[j] = e.grad_v_prev;
          gx[j] = e.grad_x;
          if (param_grads && exists(j)) {
            sums[k] += static_cast<double>(e.grad_threshold);
            sums[kSteps + k] += static_cast<double>(e.grad_sg_param);
            lam_sum += static_cast<double>(e.grad_decay);
          }
        }
        if (active) store_neurons<real>(grad_x, t * N, first, N, vector, storage, gx);
      }
    }
    if (param_grads) {  // uniform over the grid: every thread of the block reaches block_sum
      block_sum(sums, shared);
      if (threadIdx.x == 0) {
#pragma unroll
        for (int k = 0; k < kSteps; ++k) {  // unrolled: sums stays in registers
          if (k < steps) {
            partials[(1 + t0 + k) * num_blocks + blockIdx.x] = sums[k];
            partials[(1 + T + t0 + k) * num_blocks + blockIdx.x] = sums[kSteps + k];
          }
        }
      }
    }
  }
#pragma unroll
  for (int j = 0; j < V; ++j) {
    if (exists(j)) grad_v_init[first + j] = g_v[j];
  }
  if (!param_grads) return;
  double decay_sum[1] = {lam_sum};
  block_sum(decay_sum, shared);
  if (threadIdx.x == 0) partials[blockIdx.x] = decay_sum[0];
}

// partials row j -> grad_decay (j = 0), grad_threshold[j - 1], grad_sg_param[j - 1 - T].
struct NeuronGradients {
  double* grad_decay;
  double* grad_threshold;
  double* grad_sg_param;
  int64_t T;
  __device__ double* operator()(int64_t j) const {
    return j == 0 ? grad_decay : (j <= T ? grad_threshold + (j - 1) : grad_sg_param + (j - 1 - T));
  }
};

// The launchers, per state dtype: P's arrays are device arrays (threshold, sg_param and a device
// decay are checked by the kernels themselves, resolve_neuron_parameters: reading them here
// would synchronize the stream); decay_device, when given, replaces P.decay. x and the arrays
// shaped like it are in `storage`. validate_neuron_shape is the caller's.
template <typename real>
void neuron_forward_launch(const NeuronOptions& options, Storage storage, const NeuronParams<real>& P,
                           const real* decay_device, const void* x, void* output, void* membrane, void* v_last,
                           Stream stream_handle) {
  const cudaStream_t stream = as_stream(stream_handle);
  if (P.N == 0) return;
  if (x == nullptr) throw std::invalid_argument("x must not be null");
  if (output == nullptr) throw std::invalid_argument("output must not be null");
  if (v_last == nullptr) throw std::invalid_argument("v_last must not be null");
  const bool vector = vector_path<real>(P.N, storage, x, output, membrane, v_last);
  const unsigned grid = grid_size(vector_blocks<real>(P.N), "neuron_forward");
  // outside smooth mode the forward never looks at the surrogate
  dispatch_neuron_but_surrogate(options, [&](auto charge_c, auto reset_c, auto scale_c, auto smooth_c) {
    neuron_forward_kernel<real, decltype(charge_c)::value, decltype(reset_c)::value, decltype(scale_c)::value,
                          decltype(smooth_c)::value><<<grid, kBlockThreads, 0, stream>>>(
        P, decay_device, options.surrogate, storage, vector, x, output, membrane, v_last);
  });
  check_launch("neuron_forward_kernel");
}

// partials, checkpoints: the workspace of neuron_backward_workspace_bytes.
template <typename real>
void neuron_backward_launch(const NeuronOptions& options, Storage storage, const NeuronParams<real>& P,
                            const real* decay_device, const void* x, const void* grad_output,
                            const void* grad_membrane, const void* grad_v_last, void* grad_x, void* grad_v_init,
                            double* grad_decay, double* grad_threshold, double* grad_sg_param, void* workspace,
                            Stream stream_handle) {
  const cudaStream_t stream = as_stream(stream_handle);
  const bool param_grads = grad_decay != nullptr || grad_threshold != nullptr || grad_sg_param != nullptr;
  if (param_grads) {
    if (grad_decay == nullptr) throw std::invalid_argument("grad_decay must not be null");
    if (grad_threshold == nullptr) throw std::invalid_argument("grad_threshold must not be null");
    if (grad_sg_param == nullptr) throw std::invalid_argument("grad_sg_param must not be null");
  }
  const int64_t T = P.T, N = P.N;
  if (N == 0) {
    if (!param_grads) return;
    // the sums over no neurons
    check_cuda(cudaMemsetAsync(grad_decay, 0, sizeof(double), stream), "zeroing grad_decay");
    check_cuda(cudaMemsetAsync(grad_threshold, 0, sizeof(double) * static_cast<std::size_t>(T), stream),
               "zeroing grad_threshold");
    check_cuda(cudaMemsetAsync(grad_sg_param, 0, sizeof(double) * static_cast<std::size_t>(T), stream),
               "zeroing grad_sg_param");
    return;
  }
  if (x == nullptr) throw std::invalid_argument("x must not be null");
  if (grad_x == nullptr) throw std::invalid_argument("grad_x must not be null");
  if (grad_v_init == nullptr) throw std::invalid_argument("grad_v_init must not be null");
  if (workspace == nullptr) throw std::invalid_argument("workspace must not be null");
  auto* partials = static_cast<double*>(workspace);
  auto* checkpoints = reinterpret_cast<real*>(partials + partials_count(2 * T + 1, N));
  static_assert(kBackwardChunkSteps<real> == (sizeof(real) == 8 ? 4 : 8), "workspace size (dispatch.cu)");
  const bool vector = vector_path<real>(N, storage, x, grad_output, grad_membrane, grad_v_last, grad_x);
  // one block per kBlockThreads * kVector neurons: the partials' rows are that long (the
  // workspace, sized by num_blocks(N), has room to spare)
  const int64_t blocks = vector_blocks<real>(N);
  const unsigned grid = grid_size(blocks, "neuron_backward");
  dispatch_neuron_but_surrogate(options, [&](auto charge_c, auto reset_c, auto scale_c, auto smooth_c) {
    neuron_backward_kernel<real, decltype(charge_c)::value, decltype(reset_c)::value, decltype(scale_c)::value,
                           decltype(smooth_c)::value><<<grid, kBlockThreads, 0, stream>>>(
        P, decay_device, options.surrogate, options.detach_reset, param_grads, storage, vector, x, grad_output,
        grad_membrane, grad_v_last, grad_x, static_cast<real*>(grad_v_init), partials, checkpoints);
  });
  check_launch("neuron_backward_kernel");
  if (!param_grads) return;
  sum_partials(partials, blocks, 2 * T + 1, NeuronGradients{grad_decay, grad_threshold, grad_sg_param, T}, stream);
}

}  // namespace spikegrad::cuda::detail

// The launchers' signatures, for their explicit instantiation per state dtype
// (`template SPIKEGRAD_NEURON_FORWARD_CUDA(float);` in namespace spikegrad::cuda::detail, in the
// translation units spikegrad_instance_sources writes) and their declaration in dispatch.cu.
#define SPIKEGRAD_NEURON_FORWARD_CUDA(real)                                                               \
  void neuron_forward_launch<real>(const NeuronOptions&, Storage, const NeuronParams<real>&, const real*, \
                                   const void*, void*, void*, void*, Stream)
#define SPIKEGRAD_NEURON_BACKWARD_CUDA(real)                                                               \
  void neuron_backward_launch<real>(const NeuronOptions&, Storage, const NeuronParams<real>&, const real*, \
                                    const void*, const void*, const void*, const void*, void*, void*,     \
                                    double*, double*, double*, void*, Stream)

// cpp/cuda/dispatch.cu — the public launchers of spikegrad/cuda.hpp: from the run-time dtype to
// the instantiations per state dtype (neuron_*_{float,double}.cu, multilevel_cuda.cu, ...), and the canonical
// float64 sum order on the host and the device. Test: tests/test_cuda.py, cpp/tests/test_cuda_api.cpp.
#include "common.cuh"
#include "spikegrad/portable.hpp"

namespace spikegrad::cuda {

namespace detail {
template <typename real>
void neuron_forward_typed(const NeuronOptions&, DType, const NeuronDeviceParams&, const void*, void*, void*, void*,
                          Stream);
template <typename real>
void neuron_backward_typed(const NeuronOptions&, DType, const NeuronDeviceParams&, const void*, const void*,
                           const void*, const void*, void*, void*, double*, double*, double*, void*, Stream);

// f(real{}) for the dtype's state: double for Float64, float otherwise.
template <typename F>
void dispatch_state(DType dtype, F&& f) {
  switch (dtype) {
    case DType::Float64: f(0.0); return;
    case DType::Float32:
    case DType::Float16:
    case DType::BFloat16: f(0.0f); return;
  }
  throw std::invalid_argument("dtype: invalid enum value");
}
}  // namespace detail

std::size_t state_size(DType dtype) { return dtype == DType::Float64 ? sizeof(double) : sizeof(float); }

void neuron_forward(const NeuronOptions& options, DType dtype, const NeuronDeviceParams& params, const void* x,
                    void* output, void* membrane, void* v_last, Stream stream) {
  detail::dispatch_state(dtype, [&](auto tag) {
    detail::neuron_forward_typed<decltype(tag)>(options, dtype, params, x, output, membrane, v_last, stream);
  });
}

std::size_t neuron_backward_workspace_bytes(DType dtype, int64_t T, int64_t N) {
  if (T <= 0 || N <= 0) return 0;
  const int64_t chunk = dtype == DType::Float64 ? detail::kBackwardChunkSteps<double>
                                                : detail::kBackwardChunkSteps<float>;
  return sizeof(double) * detail::partials_count(2 * T + 1, N) +
         state_size(dtype) * detail::checkpoint_count(T, N, chunk);
}

void neuron_backward(const NeuronOptions& options, DType dtype, const NeuronDeviceParams& params, const void* x,
                     const void* grad_output, const void* grad_membrane, const void* grad_v_last, void* grad_x,
                     void* grad_v_init, double* grad_decay, double* grad_threshold, double* grad_sg_param,
                     void* workspace, Stream stream) {
  detail::dispatch_state(dtype, [&](auto tag) {
    detail::neuron_backward_typed<decltype(tag)>(options, dtype, params, x, grad_output, grad_membrane, grad_v_last, grad_x,
                                           grad_v_init, grad_decay, grad_threshold, grad_sg_param, workspace, stream);
  });
}

// The host twin of sum_partials_kernel's order (common.cuh): spikegrad::ordered_sum
// (spikegrad/portable.hpp), the canonical order of the CPU library and the reference too.
static_assert(kOrderedSumLanes == kBlockThreads && kOrderedSumWarp == 32,
              "ordered_sum's lanes are the second stage's threads");
double ordered_device_sum(const double* values, int64_t M) { return spikegrad::ordered_sum(values, M); }

void device_sum(const double* values, int64_t M, double* out, Stream stream) {
  if (M <= 0) {
    detail::check_cuda(cudaMemsetAsync(out, 0, sizeof(double), detail::as_stream(stream)), "zeroing out");
    return;
  }
  detail::sum_partials(values, M, 1, detail::Contiguous{out}, detail::as_stream(stream));
}

}  // namespace spikegrad::cuda

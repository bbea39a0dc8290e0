// cpp/cuda/dispatch.cu — the public launchers of spikegrad/cuda.hpp: the neuron's siblings of the
// CPU launchers (neuron_forward_cuda<real>, ...) and the launchers by run-time dtype, both onto
// the neuron's launchers per state dtype (neuron_cuda.cuh, compiled in the translation units of
// spikegrad_instance_sources), and the canonical float64 sum order on the host and the device.
// Test: tests/cuda/test_cuda.py, cpp/tests/test_cuda_api.cpp.
#include "common.cuh"
#include "neuron_cuda.cuh"
#include "spikegrad/portable.hpp"

namespace spikegrad::cuda {

namespace detail {
// compiled in translation units of their own (cmake/SpikegradInstances.cmake)
extern template SPIKEGRAD_NEURON_FORWARD_CUDA(float);
extern template SPIKEGRAD_NEURON_FORWARD_CUDA(double);
extern template SPIKEGRAD_NEURON_BACKWARD_CUDA(float);
extern template SPIKEGRAD_NEURON_BACKWARD_CUDA(double);

// The state-dtype parameters of the dtype-erased ones, checked on the host as far as that needs
// no copy from the device (validate_neuron_shape of the CPU).
template <typename real>
NeuronParams<real> launch_params(const NeuronDeviceParams& device) {
  NeuronParams<real> P;
  P.T = device.T;
  P.N = device.N;
  // a device decay replaces P.decay in the kernels
  P.decay = device.decay_device != nullptr ? static_cast<real>(0) : static_cast<real>(device.decay);
  P.v_reset = static_cast<real>(device.v_reset);
  P.threshold = static_cast<const real*>(device.threshold);
  P.sg_param = static_cast<const real*>(device.sg_param);
  P.v_init = static_cast<const real*>(device.v_init);
  validate_neuron_shape(P);
  return P;
}

template <typename real>
inline constexpr DType kStateDType = std::is_same_v<real, double> ? DType::Float64 : DType::Float32;

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
    using real = decltype(tag);
    detail::neuron_forward_launch<real>(options, detail::storage_of(dtype), detail::launch_params<real>(params),
                                        static_cast<const real*>(params.decay_device), x, output, membrane, v_last,
                                        stream);
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
    using real = decltype(tag);
    detail::neuron_backward_launch<real>(options, detail::storage_of(dtype), detail::launch_params<real>(params),
                                         static_cast<const real*>(params.decay_device), x, grad_output,
                                         grad_membrane, grad_v_last, grad_x, grad_v_init, grad_decay,
                                         grad_threshold, grad_sg_param, workspace, stream);
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

namespace spikegrad {

// The siblings of neuron_forward_cpu / neuron_backward_cpu: state-dtype arrays on the device.
template <typename real>
void neuron_forward_cuda(const NeuronOptions& options, const NeuronParams<real>& params, const same_t<real>* x,
                         same_t<real>* output, same_t<real>* membrane, same_t<real>* v_last, cuda::Stream stream) {
  validate_neuron_shape(params);
  cuda::detail::neuron_forward_launch<real>(options, cuda::detail::Storage::Native, params, nullptr, x, output,
                                            membrane, v_last, stream);
}

template <typename real>
std::size_t neuron_backward_workspace_bytes_cuda(int64_t T, int64_t N) {
  return cuda::neuron_backward_workspace_bytes(cuda::detail::kStateDType<real>, T, N);
}

template <typename real>
void neuron_backward_cuda(const NeuronOptions& options, const NeuronParams<real>& params, const same_t<real>* x,
                          const same_t<real>* grad_output, const same_t<real>* grad_membrane,
                          const same_t<real>* grad_v_last, same_t<real>* grad_x, same_t<real>* grad_v_init,
                          double* grad_decay, double* grad_threshold, double* grad_sg_param, void* workspace,
                          cuda::Stream stream) {
  validate_neuron_shape(params);
  cuda::detail::neuron_backward_launch<real>(options, cuda::detail::Storage::Native, params, nullptr, x,
                                             grad_output, grad_membrane, grad_v_last, grad_x, grad_v_init,
                                             grad_decay, grad_threshold, grad_sg_param, workspace, stream);
}

#define SPIKEGRAD_INSTANTIATE_NEURON_CUDA_SIBLINGS(real)                                                         \
  template void neuron_forward_cuda<real>(const NeuronOptions&, const NeuronParams<real>&, const real*, real*,    \
                                          real*, real*, cuda::Stream);                                           \
  template std::size_t neuron_backward_workspace_bytes_cuda<real>(int64_t, int64_t);                            \
  template void neuron_backward_cuda<real>(const NeuronOptions&, const NeuronParams<real>&, const real*,          \
                                           const real*, const real*, const real*, real*, real*, double*, double*, \
                                           double*, void*, cuda::Stream);
SPIKEGRAD_INSTANTIATE_NEURON_CUDA_SIBLINGS(float)
SPIKEGRAD_INSTANTIATE_NEURON_CUDA_SIBLINGS(double)
#undef SPIKEGRAD_INSTANTIATE_NEURON_CUDA_SIBLINGS

}  // namespace spikegrad

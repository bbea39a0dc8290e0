// cpp/cuda/neuron_backward_variants.cuh — launch_neuron_backward<real, G> (neuron_cuda.cuh): the
// backward kernel variant of the run-time charge, reset, scale and mode with surrogate G. Included
// only by the translation units cpp/cuda/CMakeLists.txt writes, one per (state dtype, surrogate).
// Test: tests/test_cuda.py (on a GPU).
#pragma once

#include "neuron_cuda.cuh"

namespace spikegrad::cuda::detail {

template <typename real, Surrogate G>
void launch_neuron_backward(const NeuronBackwardLaunch<real>& launch) {
  dispatch_neuron_but_surrogate(launch.options, [&](auto charge_c, auto reset_c, auto scale_c, auto smooth_c) {
    neuron_backward_kernel<real, decltype(charge_c)::value, decltype(reset_c)::value, decltype(scale_c)::value, G,
                           decltype(smooth_c)::value><<<launch.grid, kBlockThreads, 0, launch.stream>>>(
        launch.params, launch.decay_device, launch.options.detach_reset, launch.param_grads, launch.storage,
        launch.vector, launch.x, launch.grad_output, launch.grad_membrane, launch.grad_v_last, launch.grad_x,
        launch.grad_v_init, launch.partials, launch.checkpoints);
  });
}

}  // namespace spikegrad::cuda::detail

#define SPIKEGRAD_INSTANTIATE_NEURON_BACKWARD_VARIANTS_CUDA(real, surrogate)                         \
  namespace spikegrad::cuda::detail {                                                                \
  template void launch_neuron_backward<real, Surrogate::surrogate>(const NeuronBackwardLaunch<real>&); \
  }

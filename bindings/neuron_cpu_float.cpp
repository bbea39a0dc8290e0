// neuron_cpu_float.cpp — compiles the float CPU neuron kernels (all 288 variants) in their own
// translation unit, so that the module builds in parallel; core.cpp declares them extern.
#include <spikegrad/neuron_cpu.hpp>

namespace spikegrad {
template SPIKEGRAD_NEURON_FORWARD_CPU_SIGNATURE(float);
template SPIKEGRAD_NEURON_BACKWARD_CPU_SIGNATURE(float);
}  // namespace spikegrad

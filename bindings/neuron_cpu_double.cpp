// neuron_cpu_double.cpp — compiles the double CPU neuron kernels (all 288 variants) in their own
// translation unit, so that the module builds in parallel; core.cpp declares them extern.
#include <spikegrad/neuron_cpu.hpp>

namespace spikegrad {
template SPIKEGRAD_NEURON_FORWARD_CPU_SIGNATURE(double);
template SPIKEGRAD_NEURON_BACKWARD_CPU_SIGNATURE(double);
}  // namespace spikegrad

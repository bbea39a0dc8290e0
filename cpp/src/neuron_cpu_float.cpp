// neuron_cpu_float.cpp — the float CPU neuron kernels (all variants) compiled once, for the C++
// tests and examples of this repository, which declare them extern (SPIKEGRAD_NEURON_CPU_EXTERN)
// instead of compiling them in every executable. Library users need not do this.
#include <spikegrad/neuron_cpu.hpp>

namespace spikegrad {
template SPIKEGRAD_NEURON_FORWARD_CPU_SIGNATURE(float);
template SPIKEGRAD_NEURON_BACKWARD_CPU_SIGNATURE(float);
}  // namespace spikegrad

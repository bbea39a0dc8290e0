// cpp/cuda/neuron_backward_double.cu — the neuron's CUDA backward launcher with double state (the kernels:
// one translation unit per surrogate, cpp/cuda/CMakeLists.txt), compiled in parallel. Test: tests/test_cuda.py.
#include "neuron_cuda.cuh"

SPIKEGRAD_INSTANTIATE_NEURON_BACKWARD_CUDA(double)

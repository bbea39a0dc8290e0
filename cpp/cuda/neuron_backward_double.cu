// cpp/cuda/neuron_backward_double.cu — the neuron's CUDA backward kernels with double state, in their own
// translation unit so that they compile in parallel. Test: tests/test_cuda.py (on a GPU).
#include "neuron_cuda.cuh"

SPIKEGRAD_INSTANTIATE_NEURON_BACKWARD_CUDA(double)

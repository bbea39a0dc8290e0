// cpp/cuda/neuron_forward_double.cu — the neuron's CUDA forward kernels with double state, in their own
// translation unit so that they compile in parallel. Test: tests/test_cuda.py (on a GPU).
#include "neuron_cuda.cuh"

SPIKEGRAD_INSTANTIATE_NEURON_FORWARD_CUDA(double)

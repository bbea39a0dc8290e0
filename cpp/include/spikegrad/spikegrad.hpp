// spikegrad/spikegrad.hpp — the one public header of the spikegrad C++ library.
// Reading order: options.hpp (the variants), formulas.hpp (docs/spec.md §1-5, one function per formula),
// neuron_element.hpp (one neuron's step, shared with the CUDA kernels), neuron_params.hpp (the
// parameters and their checks), neuron_cpu.hpp (the fused CPU kernels, docs/spec.md §8),
// adaptive_cpu.hpp (DS-ATGO's adaptive threshold, docs/spec.md §2 and 5). The NumPy twin of all of it is pyref/.
#pragma once

// The API in brief (namespace spikegrad; `real` is float or double; docs/cpp.md in full):
//   neuron_forward_cpu(options, params, x, output, membrane, v_last, num_threads = 0)
//   neuron_backward_cpu(options, params, x, grad_output, grad_membrane, grad_v_last,
//                       grad_x, grad_v_init, grad_decay, grad_threshold, grad_sg_param,
//                       workspace, num_threads = 0)
//   neuron_backward_workspace_bytes_cpu<real>(T, N)   bytes of scratch the backward needs
//   neuron_backward_workspace_size(T, N)              the same in doubles
// and, in the same style, adaptive_forward_cpu (adaptive_cpu.hpp), multilevel_forward_cpu /
// multilevel_backward_cpu (multilevel_cpu.hpp) and pnb_partial_sums_cpu (pnb_cpu.hpp).
// Arrays are plain pointers with the shapes in NeuronParams<real> (T steps, N neurons,
// time-major [T, N]); the caller owns every buffer and the kernels allocate nothing.
// Errors (invalid options, shapes, null buffers, NaN or out-of-domain parameters) throw
// std::invalid_argument naming the argument, before the kernel runs. The kernels keep no
// state: concurrent calls on distinct output buffers are safe.

// Bit-exactness with the reference needs IEEE arithmetic in the written order. (FMA
// contraction cannot be detected here: the CMake target adds -ffp-contract=off.)
#if defined(__FAST_MATH__)
#error "spikegrad: the kernels are exact only without -ffast-math (see docs/cpp.md)"
#endif

#include "options.hpp"
#include "formulas.hpp"
#include "neuron_cpu.hpp"
#include "adaptive_cpu.hpp"
#include "multilevel_cpu.hpp"
#include "pnb_cpu.hpp"

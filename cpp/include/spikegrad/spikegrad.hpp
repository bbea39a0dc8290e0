// spikegrad/spikegrad.hpp — the one public header of the spikegrad C++ library.
// Reading order: options.hpp (the variants), formulas.hpp (SPEC 1-5, one function per formula),
// neuron_cpu.hpp (the fused CPU kernels, SPEC 8),
// adaptive_cpu.hpp (DS-ATGO's adaptive threshold, SPEC 2 and 5). The NumPy twin of all of it is pyref/.
#pragma once

#include "options.hpp"
#include "formulas.hpp"
#include "neuron_cpu.hpp"
#include "adaptive_cpu.hpp"
#include "multilevel_cpu.hpp"
#include "pnb_cpu.hpp"

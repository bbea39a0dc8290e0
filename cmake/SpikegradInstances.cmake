# spikegrad_instance_sources(<out_var> <CPU|CUDA>): writes the translation units that compile the
# single-level neuron's kernels once each, for the CPU (neuron_cpu.hpp, for a program that
# includes it with SPIKEGRAD_NEURON_CPU_EXTERN) or for CUDA (cpp/cuda/neuron_cuda.cuh), into the
# build tree, and sets <out_var> to their paths. One template, cmake/spikegrad_instance.in, and
# one translation unit per state dtype and direction (forward, backward), each instantiating
# one launcher with all its variants: SPIKEGRAD_NEURON_<FORWARD|BACKWARD>_<CPU|CUDA>(real), the
# signature macros of the two headers. The variants do not depend on the surrogate (a run-time
# value of the kernels, options.hpp), so nothing here lists them.
set(SPIKEGRAD_INSTANCE_TEMPLATE "${CMAKE_CURRENT_LIST_DIR}/spikegrad_instance.in")
set(SPIKEGRAD_STATE_TYPES float double)

function(spikegrad_instance_sources out_var kind)
  if(kind STREQUAL "CPU")
    set(SPIKEGRAD_INSTANCE_KIND "CPU")
    set(SPIKEGRAD_INSTANCE_PROLOGUE "#ifndef SPIKEGRAD_NEURON_CPU_EXTERN\n#define SPIKEGRAD_NEURON_CPU_EXTERN\n#endif\n")
    set(SPIKEGRAD_INSTANCE_HEADER "<spikegrad/neuron_cpu.hpp>")
    set(SPIKEGRAD_INSTANCE_NAMESPACE "spikegrad")
    set(extension "cpp")
  elseif(kind STREQUAL "CUDA")
    set(SPIKEGRAD_INSTANCE_KIND "CUDA")
    set(SPIKEGRAD_INSTANCE_PROLOGUE "")
    set(SPIKEGRAD_INSTANCE_HEADER "\"neuron_cuda.cuh\"")
    set(SPIKEGRAD_INSTANCE_NAMESPACE "spikegrad::cuda::detail")
    set(extension "cu")
  else()
    message(FATAL_ERROR "spikegrad_instance_sources: kind must be CPU or CUDA, got '${kind}'")
  endif()
  string(TOLOWER "${kind}" kind_lower)
  set(dir "${CMAKE_CURRENT_BINARY_DIR}/neuron_${kind_lower}_instances")
  set(sources)
  foreach(SPIKEGRAD_INSTANCE_REAL ${SPIKEGRAD_STATE_TYPES})
    foreach(part FORWARD BACKWARD)
      string(TOLOWER "${part}" SPIKEGRAD_INSTANCE_PART)
      set(SPIKEGRAD_INSTANCE_MACRO "SPIKEGRAD_NEURON_${part}_${kind}")
      set(SPIKEGRAD_INSTANCE_FILE "neuron_${kind_lower}_${SPIKEGRAD_INSTANCE_PART}_${SPIKEGRAD_INSTANCE_REAL}.${extension}")
      configure_file("${SPIKEGRAD_INSTANCE_TEMPLATE}" "${dir}/${SPIKEGRAD_INSTANCE_FILE}" @ONLY)
      list(APPEND sources "${dir}/${SPIKEGRAD_INSTANCE_FILE}")
    endforeach()
  endforeach()
  set(${out_var} ${sources} PARENT_SCOPE)
endfunction()

# spikegrad_neuron_instance_sources(<out_var>): writes the translation units that compile the CPU
# neuron kernels once each (for a program that includes neuron_cpu.hpp with
# SPIKEGRAD_NEURON_CPU_EXTERN) into the build tree and sets <out_var> to their paths. Per dtype:
# the launchers (the forward's variants with them), and the backward's variants of each
# surrogate apart (72 each): ten translation units instead of two, so that a machine with many
# cores builds the 288 backward variants per dtype in parallel (docs/cpp.md).
set(SPIKEGRAD_INSTANCE_TEMPLATE "${CMAKE_CURRENT_LIST_DIR}/../cpp/src/neuron_cpu_instance.cpp.in")
# The state dtypes and surrogate shapes (options.hpp's Surrogate) each kernel share is compiled
# for; cpp/cuda/CMakeLists.txt splits the CUDA backward the same way.
set(SPIKEGRAD_STATE_TYPES float double)
set(SPIKEGRAD_SURROGATE_NAMES Rect Triangle Sigmoid Atan)

function(spikegrad_neuron_instance_sources out_var)
  set(dir "${CMAKE_CURRENT_BINARY_DIR}/neuron_cpu_instances")
  set(sources)
  foreach(real ${SPIKEGRAD_STATE_TYPES})
    set(SPIKEGRAD_INSTANCE_FILE "neuron_cpu_${real}.cpp")
    set(SPIKEGRAD_INSTANCE "template SPIKEGRAD_NEURON_FORWARD_CPU_SIGNATURE(${real});\ntemplate SPIKEGRAD_NEURON_BACKWARD_CPU_SIGNATURE(${real});")
    configure_file("${SPIKEGRAD_INSTANCE_TEMPLATE}" "${dir}/${SPIKEGRAD_INSTANCE_FILE}" @ONLY)
    list(APPEND sources "${dir}/${SPIKEGRAD_INSTANCE_FILE}")
    foreach(surrogate ${SPIKEGRAD_SURROGATE_NAMES})
      set(SPIKEGRAD_INSTANCE_FILE "neuron_cpu_${real}_backward_${surrogate}.cpp")
      set(SPIKEGRAD_INSTANCE "template SPIKEGRAD_NEURON_BACKWARD_VARIANTS_SIGNATURE(${real}, ${surrogate});")
      configure_file("${SPIKEGRAD_INSTANCE_TEMPLATE}" "${dir}/${SPIKEGRAD_INSTANCE_FILE}" @ONLY)
      list(APPEND sources "${dir}/${SPIKEGRAD_INSTANCE_FILE}")
    endforeach()
  endforeach()
  set(${out_var} ${sources} PARENT_SCOPE)
endfunction()

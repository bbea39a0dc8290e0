// bindings/core.cpp — spikegrad._core: the C++ kernels of cpp/include/spikegrad on host buffers
// (NumPy arrays or CPU torch tensors), one m.def per op. Thin on purpose: it checks every buffer
// (bindings/buffers.hpp), releases the GIL and calls the kernel. It allocates nothing: the caller
// passes the outputs and the workspaces. Test: tests/ compare these ops with spikegrad.ref;
// tests/ops/test_buffers.py the checks.
#define SPIKEGRAD_NEURON_CPU_EXTERN  // the kernels compile apart (cmake/SpikegradInstances.cmake)
#include <spikegrad/spikegrad.hpp>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "buffers.hpp"

namespace py = pybind11;

namespace {

using spikegrad::bindings::Access;
using spikegrad::bindings::Buffer;
using spikegrad::bindings::DType;
using spikegrad::bindings::Placement;
using spikegrad::bindings::Shape;
using spikegrad::bindings::argument;
using spikegrad::bindings::optional_argument;
using spikegrad::bindings::require_no_overlap;
using spikegrad::bindings::require_time_major;
using spikegrad::bindings::scalar_argument;
using spikegrad::bindings::workspace_argument;

constexpr Placement kHost = Placement::Host;  // NumPy arrays and CPU tensors
constexpr Access kIn = Access::In;
constexpr Access kOut = Access::Out;

// Runs f(real{}) for the float dtype of x.
template <typename F>
void with_real(DType dtype, F&& f) {
  if (dtype == DType::Float32) {
    f(0.0f);
  } else {
    f(0.0);
  }
}

template <typename real>
const real* data_or_null(const Buffer& b) {
  return b.present ? b.as<const real>() : nullptr;
}

template <typename real>
real* mutable_data_or_null(const Buffer& b) {
  return b.present ? b.as<real>() : nullptr;
}

int64_t bytes_of_doubles(std::size_t count) { return static_cast<int64_t>(count * sizeof(double)); }

// ---------------------------------------------------------------------------------------------
// Ops: the arguments in the order of the C++ entry point (the params struct's fields, then its
// buffers), T and N from x's shape, options keyword-only.
// ---------------------------------------------------------------------------------------------

void neuron_forward(const py::object& decay_obj, double v_reset, const py::object& threshold_obj,
                    const py::object& sg_param_obj, const py::object& v_init_obj, const py::object& x_obj,
                    const py::object& output_obj, const py::object& membrane_obj, const py::object& v_last_obj,
                    const std::string& charge, const std::string& reset, const std::string& scale,
                    const std::string& surrogate, bool smooth, int num_threads) {
  const spikegrad::NeuronOptions options = spikegrad::parse_neuron_options(charge, reset, scale, surrogate, smooth, false);
  const Buffer x = spikegrad::bindings::buffer(x_obj, "x", kHost);
  const DType dtype = require_time_major(x, false);
  const int64_t T = x.shape.dims[0], N = x.shape.dims[1];
  const auto decay = scalar_argument(decay_obj, "decay", kHost, dtype);
  const Buffer threshold = argument(threshold_obj, "threshold", kHost, dtype, {T}, kIn);
  const Buffer sg_param = argument(sg_param_obj, "sg_param", kHost, dtype, {T}, kIn);
  const Buffer v_init = optional_argument(v_init_obj, "v_init", kHost, dtype, {N}, kIn);  // None: zeros
  const Buffer output = argument(output_obj, "output", kHost, dtype, {T, N}, kOut);
  const Buffer membrane = optional_argument(membrane_obj, "membrane", kHost, dtype, {T, N}, kOut);
  const Buffer v_last = argument(v_last_obj, "v_last", kHost, dtype, {N}, kOut);
  require_no_overlap({{&x, kIn}, {&threshold, kIn}, {&sg_param, kIn}, {&v_init, kIn},
                      {&output, kOut}, {&membrane, kOut}, {&v_last, kOut}});
  with_real(dtype, [&](auto zero) {
    using real = decltype(zero);
    spikegrad::NeuronParams<real> params;
    params.T = T;
    params.N = N;
    params.decay = static_cast<real>(decay.value);
    params.v_reset = static_cast<real>(v_reset);
    params.threshold = threshold.as<const real>();
    params.sg_param = sg_param.as<const real>();
    params.v_init = data_or_null<real>(v_init);
    py::gil_scoped_release release;
    spikegrad::neuron_forward_cpu(options, params, x.as<const real>(), output.as<real>(),
                                  mutable_data_or_null<real>(membrane), v_last.as<real>(), num_threads);
  });
}

int64_t neuron_backward_workspace_bytes(const py::object& x_obj) {
  const Buffer x = spikegrad::bindings::buffer(x_obj, "x", kHost);
  require_time_major(x, false);
  return static_cast<int64_t>(spikegrad::neuron_backward_workspace_bytes_cpu<double>(x.shape.dims[0], x.shape.dims[1]));
}

void neuron_backward(const py::object& decay_obj, double v_reset, const py::object& threshold_obj,
                     const py::object& sg_param_obj, const py::object& v_init_obj, const py::object& x_obj,
                     const py::object& grad_output_obj, const py::object& grad_membrane_obj,
                     const py::object& grad_v_last_obj, const py::object& grad_x_obj,
                     const py::object& grad_v_init_obj, const py::object& grad_decay_obj,
                     const py::object& grad_threshold_obj, const py::object& grad_sg_param_obj,
                     const py::object& workspace_obj, const std::string& charge, const std::string& reset,
                     const std::string& scale, const std::string& surrogate, bool smooth, bool detach_reset,
                     int num_threads) {
  const spikegrad::NeuronOptions options = spikegrad::parse_neuron_options(charge, reset, scale, surrogate, smooth, detach_reset);
  const Buffer x = spikegrad::bindings::buffer(x_obj, "x", kHost);
  const DType dtype = require_time_major(x, false);
  const int64_t T = x.shape.dims[0], N = x.shape.dims[1];
  const auto decay = scalar_argument(decay_obj, "decay", kHost, dtype);
  const Buffer threshold = argument(threshold_obj, "threshold", kHost, dtype, {T}, kIn);
  const Buffer sg_param = argument(sg_param_obj, "sg_param", kHost, dtype, {T}, kIn);
  const Buffer v_init = optional_argument(v_init_obj, "v_init", kHost, dtype, {N}, kIn);
  const Buffer grad_output = optional_argument(grad_output_obj, "grad_output", kHost, dtype, {T, N}, kIn);
  const Buffer grad_membrane = optional_argument(grad_membrane_obj, "grad_membrane", kHost, dtype, {T, N}, kIn);
  const Buffer grad_v_last = optional_argument(grad_v_last_obj, "grad_v_last", kHost, dtype, {N}, kIn);
  const Buffer grad_x = argument(grad_x_obj, "grad_x", kHost, dtype, {T, N}, kOut);
  const Buffer grad_v_init = argument(grad_v_init_obj, "grad_v_init", kHost, dtype, {N}, kOut);
  // float64 sums; all three or none (then the kernel makes no parameter sums)
  const char* f64 = "float64 sums";
  const Buffer grad_decay = optional_argument(grad_decay_obj, "grad_decay", kHost, DType::Float64, Shape::scalar(), kOut, f64);
  const Buffer grad_threshold = optional_argument(grad_threshold_obj, "grad_threshold", kHost, DType::Float64, {T}, kOut, f64);
  const Buffer grad_sg_param = optional_argument(grad_sg_param_obj, "grad_sg_param", kHost, DType::Float64, {T}, kOut, f64);
  const Buffer workspace = workspace_argument(workspace_obj, "workspace", kHost,
                                              static_cast<int64_t>(spikegrad::neuron_backward_workspace_bytes_cpu<double>(T, N)));
  require_no_overlap({{&x, kIn}, {&threshold, kIn}, {&sg_param, kIn}, {&v_init, kIn}, {&grad_output, kIn},
                      {&grad_membrane, kIn}, {&grad_v_last, kIn}, {&grad_x, kOut}, {&grad_v_init, kOut},
                      {&grad_decay, kOut}, {&grad_threshold, kOut}, {&grad_sg_param, kOut}, {&workspace, kOut}});
  with_real(dtype, [&](auto zero) {
    using real = decltype(zero);
    spikegrad::NeuronParams<real> params;
    params.T = T;
    params.N = N;
    params.decay = static_cast<real>(decay.value);
    params.v_reset = static_cast<real>(v_reset);
    params.threshold = threshold.as<const real>();
    params.sg_param = sg_param.as<const real>();
    params.v_init = data_or_null<real>(v_init);
    py::gil_scoped_release release;
    spikegrad::neuron_backward_cpu(options, params, x.as<const real>(), data_or_null<real>(grad_output),
                                   data_or_null<real>(grad_membrane), data_or_null<real>(grad_v_last),
                                   grad_x.as<real>(), grad_v_init.as<real>(), mutable_data_or_null<double>(grad_decay),
                                   mutable_data_or_null<double>(grad_threshold),
                                   mutable_data_or_null<double>(grad_sg_param), workspace.as<void>(), num_threads);
  });
}

#include "adaptive_bindings.hpp"  // DS-ATGO's adaptive-threshold ops (bind_adaptive)

bool has_openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

#include "multilevel_bindings.hpp"  // docs/spec.md §6: the CF neuron and the PNB partial sums

int openmp_max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() =
      "spikegrad._core: the C++ CPU kernels (cpp/include/spikegrad) on host buffers.\n\n"
      "The calling convention of spikegrad._core and spikegrad._cuda (docs/cpp.md):\n"
      "- every buffer is a NumPy array or a CPU torch.Tensor (_cuda: a CUDA tensor), C-contiguous;\n"
      "- the arguments come in the order of the C++ entry point (the params struct's fields, then\n"
      "  its buffers); T and N come from x's shape [T, N]; options are keyword-only;\n"
      "- outputs are passed in by the caller and written in place; the ops return None;\n"
      "- workspaces are uint8 buffers of at least X_workspace_bytes(x) bytes, passed by the\n"
      "  caller (the module allocates nothing);\n"
      "- the dtype of x (float32 or float64) fixes the others; the float64 gradient sums are\n"
      "  float64; decay is a float or a 0-d buffer.\n"
      "Use spikegrad.kernels for the reference's calling convention.";

  m.def("neuron_forward", &neuron_forward, py::arg("decay"), py::arg("v_reset"), py::arg("threshold"),
        py::arg("sg_param"), py::arg("v_init").none(true), py::arg("x"), py::arg("output"),
        py::arg("membrane").none(true), py::arg("v_last"), py::kw_only(), py::arg("charge"), py::arg("reset"),
        py::arg("scale"), py::arg("surrogate"), py::arg("smooth"), py::arg("num_threads") = 0,
        R"doc(Run the single-level neuron over T steps (docs/spec.md §1-5), fused over T.

decay: a float or a 0-d buffer; v_reset: a float (both cast to the dtype of x).
threshold, sg_param: [T]. v_init: [N], or None for zeros. x: [T, N] input current.
Writes output: [T, N] (o[t]), membrane: [T, N] (h[t], before reset) unless None,
v_last: [N] (v[T-1], after the last reset).
charge: 'mul' | 'decay_input' | 'no_decay_input' | 'if'; reset: 'hard' | 'soft' | 'none';
scale: 'absolute' | 'relative' | 'threshold_robust'; surrogate: 'rect' | 'triangle' |
'sigmoid' | 'atan' (used by the forward only when smooth); smooth: spike s = F(z) instead of H(z).
num_threads <= 0: OpenMP's default. Bit-identical to spikegrad.ref.forward when not smooth.)doc");

  m.def("neuron_backward_workspace_bytes", &neuron_backward_workspace_bytes, py::arg("x"),
        "Bytes of the workspace of neuron_backward for x [T, N] (the float64 per-block sums).");

  m.def("neuron_backward", &neuron_backward, py::arg("decay"), py::arg("v_reset"), py::arg("threshold"),
        py::arg("sg_param"), py::arg("v_init").none(true), py::arg("x"), py::arg("grad_output").none(true),
        py::arg("grad_membrane").none(true), py::arg("grad_v_last").none(true), py::arg("grad_x"),
        py::arg("grad_v_init"), py::arg("grad_decay").none(true), py::arg("grad_threshold").none(true),
        py::arg("grad_sg_param").none(true), py::arg("workspace"), py::kw_only(), py::arg("charge"),
        py::arg("reset"), py::arg("scale"), py::arg("surrogate"), py::arg("smooth"), py::arg("detach_reset"),
        py::arg("num_threads") = 0,
        R"doc(BPTT backward of neuron_forward (docs/spec.md §8), recomputing the forward from x.

Same parameters as neuron_forward. grad_output, grad_membrane: [T, N] or None (zero);
grad_v_last: [N] or None (zero). Writes grad_x: [T, N] and grad_v_init: [N], and
grad_decay: float64 0-d, grad_threshold, grad_sg_param: float64 [T], accumulated in float64
in a fixed order (the same bits for any num_threads); pass None for all three to skip the
parameter gradients (their per-block float64 sums are then not computed at all).
workspace: uint8, neuron_backward_workspace_bytes(x) bytes. detach_reset: the spike inside
the reset carries no gradient.)doc");

  bind_adaptive(m);
  register_multilevel(m);

  m.def("has_openmp", &has_openmp, "Whether the kernels were compiled with OpenMP.");
  m.def("openmp_max_threads", &openmp_max_threads,
        "The number of threads a kernel uses with num_threads <= 0 (1 without OpenMP).");
}

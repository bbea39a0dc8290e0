// bindings/core.cpp — spikegrad._core: the C++ kernels of cpp/include/spikegrad on NumPy buffers,
// one m.def per op. Thin on purpose: it checks every buffer (dtype, shape, C order, writeable,
// no overlap), releases the GIL and calls the kernel. It allocates nothing big: the caller
// passes the out-buffers. Test: tests/ compare these ops with spikegrad.ref.
#define SPIKEGRAD_NEURON_CPU_EXTERN  // the kernels compile apart (cmake/SpikegradInstances.cmake)
#include <spikegrad/spikegrad.hpp>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace py = pybind11;

namespace {

// ---------------------------------------------------------------------------------------------
// Buffer checks. TypeError for a wrong type or dtype, ValueError for a wrong shape, order,
// writeability or overlap; every message names the argument.
// ---------------------------------------------------------------------------------------------

std::string shape_string(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t d = 0; d < a.ndim(); ++d) {
    s += std::to_string(a.shape(d));
    if (a.ndim() == 1 || d + 1 < a.ndim()) s += a.ndim() == 1 ? "," : ", ";
  }
  return s + ")";
}

std::string shape_string(std::initializer_list<int64_t> shape) {
  std::string s = "(";
  std::size_t d = 0;
  for (int64_t extent : shape) {
    s += std::to_string(extent);
    if (shape.size() == 1 || ++d < shape.size()) s += shape.size() == 1 ? "," : ", ";
  }
  return s + ")";
}

py::array as_array(const py::object& obj, const char* name) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(std::string(name) + " must be a numpy.ndarray, got " +
                         py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
  }
  return py::reinterpret_borrow<py::array>(obj);
}

// An array argument: same dtype as x, the given shape, C-contiguous, and writeable if an output.
py::array checked(const py::object& obj, const char* name, const py::dtype& dtype,
                  std::initializer_list<int64_t> shape, bool output) {
  py::array a = as_array(obj, name);
  if (!a.dtype().equal(dtype)) {
    throw py::type_error(std::string(name) + " must have dtype " + py::str(dtype).cast<std::string>() +
                         " (the dtype of x), got " + py::str(a.dtype()).cast<std::string>());
  }
  bool same_shape = a.ndim() == static_cast<py::ssize_t>(shape.size());
  py::ssize_t d = 0;
  for (int64_t extent : shape) {
    if (same_shape && a.shape(d) != extent) same_shape = false;
    ++d;
  }
  if (!same_shape) {
    throw py::value_error(std::string(name) + " must have shape " + shape_string(shape) + ", got " +
                          shape_string(a));
  }
  if (!(a.flags() & py::array::c_style)) throw py::value_error(std::string(name) + " must be C-contiguous");
  if (output && !a.writeable()) throw py::value_error(std::string(name) + " must be writeable");
  return a;
}

py::dtype dtype_of_x(const py::array& x) {
  if (x.dtype().equal(py::dtype::of<float>())) return py::dtype::of<float>();
  if (x.dtype().equal(py::dtype::of<double>())) return py::dtype::of<double>();
  throw py::type_error("x must be float32 or float64, got " + py::str(x.dtype()).cast<std::string>());
}

struct Buffer {
  const char* name;
  const py::array* array;  // nullptr: argument absent (None)
  bool output;
};

// The kernels read inputs while writing outputs (and use grad_x as scratch): an output may not
// share memory with any other argument.
void check_no_overlap(std::initializer_list<Buffer> buffers) {
  for (const Buffer& out : buffers) {
    if (!out.output || out.array == nullptr || out.array->nbytes() == 0) continue;
    const char* out_begin = static_cast<const char*>(out.array->data());
    const char* out_end = out_begin + out.array->nbytes();
    for (const Buffer& other : buffers) {
      if (&other == &out || other.array == nullptr || other.array->nbytes() == 0) continue;
      const char* begin = static_cast<const char*>(other.array->data());
      const char* end = begin + other.array->nbytes();
      if (begin < out_end && out_begin < end) {
        throw py::value_error(std::string(out.name) + " must not share memory with " + other.name);
      }
    }
  }
}

template <typename real>
spikegrad::NeuronParams<real> make_params(const py::array& x, double decay, const py::array& threshold,
                                          double v_reset, const py::array& sg_param, const py::array* v_init) {
  spikegrad::NeuronParams<real> params;
  params.T = static_cast<int64_t>(x.shape(0));
  params.N = static_cast<int64_t>(x.shape(1));
  params.decay = static_cast<real>(decay);
  params.v_reset = static_cast<real>(v_reset);
  params.threshold = static_cast<const real*>(threshold.data());
  params.sg_param = static_cast<const real*>(sg_param.data());
  params.v_init = v_init != nullptr ? static_cast<const real*>(v_init->data()) : nullptr;  // null: zeros
  return params;
}

template <typename real>
const real* data_or_null(const py::array* a) {
  return a == nullptr ? nullptr : static_cast<const real*>(a->data());
}

template <typename real>
real* mutable_data_or_null(py::array* a) {
  return a == nullptr ? nullptr : static_cast<real*>(a->mutable_data());
}

// ---------------------------------------------------------------------------------------------
// Ops
// ---------------------------------------------------------------------------------------------

void neuron_forward(const py::object& x_obj, double decay, const py::object& threshold_obj, double v_reset,
                    const py::object& sg_param_obj, const py::object& v_init_obj, const py::object& output_obj,
                    const py::object& membrane_obj, const py::object& v_last_obj, const std::string& charge,
                    const std::string& reset, const std::string& scale, const std::string& surrogate, bool smooth,
                    int num_threads) {
  const spikegrad::NeuronOptions options = spikegrad::parse_neuron_options(charge, reset, scale, surrogate, smooth, false);
  py::array x = as_array(x_obj, "x");
  const py::dtype dtype = dtype_of_x(x);
  if (x.ndim() != 2) throw py::value_error("x must be 2-D [T, N], got shape " + shape_string(x));
  const int64_t T = static_cast<int64_t>(x.shape(0)), N = static_cast<int64_t>(x.shape(1));
  x = checked(x, "x", dtype, {T, N}, false);
  py::array threshold = checked(threshold_obj, "threshold", dtype, {T}, false);
  py::array sg_param = checked(sg_param_obj, "sg_param", dtype, {T}, false);
  py::array v_init;  // None: zeros
  const bool has_v_init = !v_init_obj.is_none();
  if (has_v_init) v_init = checked(v_init_obj, "v_init", dtype, {N}, false);
  const py::array* v_init_ptr = has_v_init ? &v_init : nullptr;
  py::array output = checked(output_obj, "output", dtype, {T, N}, true);
  py::array membrane;
  const bool has_membrane = !membrane_obj.is_none();
  if (has_membrane) membrane = checked(membrane_obj, "membrane", dtype, {T, N}, true);
  py::array v_last = checked(v_last_obj, "v_last", dtype, {N}, true);
  py::array* membrane_ptr = has_membrane ? &membrane : nullptr;
  check_no_overlap({{"x", &x, false},
                    {"threshold", &threshold, false},
                    {"sg_param", &sg_param, false},
                    {"v_init", v_init_ptr, false},
                    {"output", &output, true},
                    {"membrane", membrane_ptr, true},
                    {"v_last", &v_last, true}});

  auto run = [&](auto zero) {
    using real = decltype(zero);
    const spikegrad::NeuronParams<real> params = make_params<real>(x, decay, threshold, v_reset, sg_param, v_init_ptr);
    const real* x_data = static_cast<const real*>(x.data());
    real* output_data = static_cast<real*>(output.mutable_data());
    real* membrane_data = mutable_data_or_null<real>(membrane_ptr);
    real* v_last_data = static_cast<real*>(v_last.mutable_data());
    py::gil_scoped_release release;
    spikegrad::neuron_forward_cpu(options, params, x_data, output_data, membrane_data, v_last_data, num_threads);
  };
  if (dtype.equal(py::dtype::of<float>())) {
    run(0.0f);
  } else {
    run(0.0);
  }
}

py::tuple neuron_backward(const py::object& x_obj, double decay, const py::object& threshold_obj, double v_reset,
                          const py::object& sg_param_obj, const py::object& v_init_obj,
                          const py::object& grad_output_obj, const py::object& grad_membrane_obj,
                          const py::object& grad_v_last_obj, const py::object& grad_x_obj,
                          const py::object& grad_v_init_obj, const std::string& charge, const std::string& reset,
                          const std::string& scale, const std::string& surrogate, bool smooth, bool detach_reset,
                          bool param_grads, int num_threads) {
  const spikegrad::NeuronOptions options = spikegrad::parse_neuron_options(charge, reset, scale, surrogate, smooth, detach_reset);
  py::array x = as_array(x_obj, "x");
  const py::dtype dtype = dtype_of_x(x);
  if (x.ndim() != 2) throw py::value_error("x must be 2-D [T, N], got shape " + shape_string(x));
  const int64_t T = static_cast<int64_t>(x.shape(0)), N = static_cast<int64_t>(x.shape(1));
  x = checked(x, "x", dtype, {T, N}, false);
  py::array threshold = checked(threshold_obj, "threshold", dtype, {T}, false);
  py::array sg_param = checked(sg_param_obj, "sg_param", dtype, {T}, false);
  py::array v_init;  // None: zeros
  const bool has_v_init = !v_init_obj.is_none();
  if (has_v_init) v_init = checked(v_init_obj, "v_init", dtype, {N}, false);
  const py::array* v_init_ptr = has_v_init ? &v_init : nullptr;
  py::array grad_output, grad_membrane, grad_v_last;
  const bool has_grad_output = !grad_output_obj.is_none();
  const bool has_grad_membrane = !grad_membrane_obj.is_none();
  const bool has_grad_v_last = !grad_v_last_obj.is_none();
  if (has_grad_output) grad_output = checked(grad_output_obj, "grad_output", dtype, {T, N}, false);
  if (has_grad_membrane) grad_membrane = checked(grad_membrane_obj, "grad_membrane", dtype, {T, N}, false);
  if (has_grad_v_last) grad_v_last = checked(grad_v_last_obj, "grad_v_last", dtype, {N}, false);
  py::array grad_x = checked(grad_x_obj, "grad_x", dtype, {T, N}, true);
  py::array grad_v_init = checked(grad_v_init_obj, "grad_v_init", dtype, {N}, true);
  const py::array* grad_output_ptr = has_grad_output ? &grad_output : nullptr;
  const py::array* grad_membrane_ptr = has_grad_membrane ? &grad_membrane : nullptr;
  const py::array* grad_v_last_ptr = has_grad_v_last ? &grad_v_last : nullptr;
  check_no_overlap({{"x", &x, false},
                    {"threshold", &threshold, false},
                    {"sg_param", &sg_param, false},
                    {"v_init", v_init_ptr, false},
                    {"grad_output", grad_output_ptr, false},
                    {"grad_membrane", grad_membrane_ptr, false},
                    {"grad_v_last", grad_v_last_ptr, false},
                    {"grad_x", &grad_x, true},
                    {"grad_v_init", &grad_v_init, true}});

  // small results: T doubles each, plus the per-block partial sums
  py::array_t<double> grad_threshold(static_cast<py::ssize_t>(T));
  py::array_t<double> grad_sg_param(static_cast<py::ssize_t>(T));
  double grad_decay = 0;
  std::vector<double> workspace(param_grads ? spikegrad::neuron_backward_workspace_size(T, N) : 0);

  auto run = [&](auto zero) {
    using real = decltype(zero);
    const spikegrad::NeuronParams<real> params = make_params<real>(x, decay, threshold, v_reset, sg_param, v_init_ptr);
    const real* x_data = static_cast<const real*>(x.data());
    const real* grad_output_data = data_or_null<real>(grad_output_ptr);
    const real* grad_membrane_data = data_or_null<real>(grad_membrane_ptr);
    const real* grad_v_last_data = data_or_null<real>(grad_v_last_ptr);
    real* grad_x_data = static_cast<real*>(grad_x.mutable_data());
    real* grad_v_init_data = static_cast<real*>(grad_v_init.mutable_data());
    double* grad_threshold_data = grad_threshold.mutable_data();
    double* grad_sg_param_data = grad_sg_param.mutable_data();
    py::gil_scoped_release release;
    spikegrad::neuron_backward_cpu(options, params, x_data, grad_output_data, grad_membrane_data, grad_v_last_data,
                                   grad_x_data, grad_v_init_data, param_grads ? &grad_decay : nullptr,
                                   param_grads ? grad_threshold_data : nullptr,
                                   param_grads ? grad_sg_param_data : nullptr,
                                   param_grads ? workspace.data() : nullptr, num_threads);
  };
  if (dtype.equal(py::dtype::of<float>())) {
    run(0.0f);
  } else {
    run(0.0);
  }
  if (!param_grads) return py::make_tuple(py::none(), py::none(), py::none());
  return py::make_tuple(grad_decay, grad_threshold, grad_sg_param);
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
      "spikegrad._core: the C++ CPU kernels (cpp/include/spikegrad) on NumPy buffers.\n\n"
      "Every array is C-contiguous, [T, N] time-major, of one dtype (float32 or float64, the\n"
      "dtype of x); outputs are passed in by the caller and written in place. Use\n"
      "spikegrad.kernels for the reference's calling convention.";

  m.def("neuron_forward", &neuron_forward, py::arg("x"), py::arg("decay"), py::arg("threshold"), py::arg("v_reset"),
        py::arg("sg_param"), py::arg("v_init").none(true), py::arg("output"), py::arg("membrane").none(true), py::arg("v_last"),
        py::kw_only(), py::arg("charge"), py::arg("reset"), py::arg("scale"), py::arg("surrogate"),
        py::arg("smooth"), py::arg("num_threads") = 0,
        R"doc(Run the single-level neuron over T steps (docs/spec.md §1-5), fused over T.

x: [T, N] input current. decay, v_reset: floats (cast to the dtype of x).
threshold, sg_param: [T]. v_init: [N], or None for zeros.
Writes output: [T, N] (o[t]), membrane: [T, N] (h[t], before reset) unless None,
v_last: [N] (v[T-1], after the last reset).
charge: 'mul' | 'decay_input' | 'no_decay_input' | 'if'; reset: 'hard' | 'soft' | 'none';
scale: 'absolute' | 'relative' | 'threshold_robust'; surrogate: 'rect' | 'triangle' |
'sigmoid' | 'atan' (used by the forward only when smooth); smooth: spike s = F(z) instead of H(z).
num_threads <= 0: OpenMP's default. Bit-identical to spikegrad.ref.forward when not smooth.)doc");

  m.def("neuron_backward", &neuron_backward, py::arg("x"), py::arg("decay"), py::arg("threshold"),
        py::arg("v_reset"), py::arg("sg_param"), py::arg("v_init").none(true), py::arg("grad_output").none(true),
        py::arg("grad_membrane").none(true), py::arg("grad_v_last").none(true), py::arg("grad_x"),
        py::arg("grad_v_init"), py::kw_only(), py::arg("charge"), py::arg("reset"), py::arg("scale"),
        py::arg("surrogate"), py::arg("smooth"), py::arg("detach_reset"), py::arg("param_grads") = true,
        py::arg("num_threads") = 0,
        R"doc(BPTT backward of neuron_forward (docs/spec.md §8), recomputing the forward from x.

Same parameters as neuron_forward. grad_output, grad_membrane: [T, N] or None (zero);
grad_v_last: [N] or None (zero). Writes grad_x: [T, N] and grad_v_init: [N].
Returns (grad_decay: float, grad_threshold: float64 [T], grad_sg_param: float64 [T]);
parameter gradients are accumulated in float64 in a fixed order (the same bits for any
num_threads). detach_reset: the spike inside the reset carries no gradient.
param_grads=False skips the parameter gradients (returns (None, None, None)): their per-block
float64 sums are then not computed at all.)doc");

  bind_adaptive(m);
  register_multilevel(m);

  m.def("has_openmp", &has_openmp, "Whether the kernels were compiled with OpenMP.");
  m.def("openmp_max_threads", &openmp_max_threads,
        "The number of threads a kernel uses with num_threads <= 0 (1 without OpenMP).");
}

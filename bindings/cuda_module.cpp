// bindings/cuda_module.cpp — spikegrad._cuda: the CUDA launchers of spikegrad/cuda.hpp for the
// torch ops (bindings/spikegrad/ops/*_ops.py), in spikegrad._core's calling convention (docs/cuda.md):
// buffers are CUDA torch tensors, read by duck typing (bindings/buffers.hpp: no PyTorch here),
// all on x's device; the stream is a keyword (an integer, a cudaStream_t). The caller owns every
// buffer, workspaces included. Compiled by the host compiler; the kernels are in the static
// library spikegrad::cuda. Test: tests/cuda/test_cuda*.py.
#include <spikegrad/cuda.hpp>
#include <spikegrad/options.hpp>  // parse_threshold_mode, parse_tgo_driver

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "buffers.hpp"

namespace py = pybind11;
namespace sc = spikegrad::cuda;

namespace {

using spikegrad::bindings::Access;
using spikegrad::bindings::Buffer;
using spikegrad::bindings::DType;
using spikegrad::bindings::Placement;
using spikegrad::bindings::Shape;
using spikegrad::bindings::argument;
using spikegrad::bindings::optional_argument;
using spikegrad::bindings::require_no_overlap;
using spikegrad::bindings::require_same_device;
using spikegrad::bindings::require_time_major;
using spikegrad::bindings::scalar_argument;
using spikegrad::bindings::state_dtype;
using spikegrad::bindings::workspace_argument;

constexpr Placement kCuda = Placement::Cuda;
constexpr Access kIn = Access::In;
constexpr Access kOut = Access::Out;
const char* const kState = "the state dtype of x";
const char* const kSums = "float64 sums";

sc::DType device_dtype(DType dtype) {
  switch (dtype) {
    case DType::Float32: return sc::DType::Float32;
    case DType::Float64: return sc::DType::Float64;
    case DType::Float16: return sc::DType::Float16;
    default: return sc::DType::BFloat16;
  }
}

sc::Stream stream_of(std::uintptr_t stream) { return reinterpret_cast<sc::Stream>(stream); }

template <typename T = void>
T* data_or_null(const Buffer& b) {
  return b.present ? b.as<T>() : nullptr;
}

// x of a [T, N] op on the device: float32, float64, float16 or bfloat16 (allow_half).
Buffer time_major_x(const py::object& x_obj, bool allow_half) {
  const Buffer x = spikegrad::bindings::buffer(x_obj, "x", kCuda);
  require_time_major(x, allow_half);
  return x;
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() =
      "spikegrad._cuda: the CUDA kernels (spikegrad/cuda.hpp) on CUDA torch tensors.\n\n"
      "spikegrad._core's calling convention (docs/cuda.md): buffers are CUDA tensors on x's device,\n"
      "C-contiguous, in the order of the C++ launcher; T and N come from x's shape; options are\n"
      "keyword-only, and `stream` (an int, a cudaStream_t) is the last keyword. Outputs and\n"
      "workspaces (uint8, at least X_workspace_bytes(x) bytes) are passed in by the caller.\n"
      "x: float32, float64, float16 or bfloat16; the state (parameters, v_init, grad_v_init) is\n"
      "float32 for the half dtypes. decay: a float, or a 0-d device tensor the kernels read.";
  m.attr("BLOCK_THREADS") = sc::kBlockThreads;
  m.attr("CHUNK_STEPS") = sc::kChunkSteps;

  m.def("neuron_forward",
        [](const py::object& decay_obj, double v_reset, const py::object& threshold_obj,
           const py::object& sg_param_obj, const py::object& v_init_obj, const py::object& x_obj,
           const py::object& output_obj, const py::object& membrane_obj, const py::object& v_last_obj,
           const std::string& charge, const std::string& reset, const std::string& scale,
           const std::string& surrogate, bool smooth, std::uintptr_t stream) {
          const auto options = spikegrad::parse_neuron_options(charge, reset, scale, surrogate, smooth, false);
          const Buffer x = time_major_x(x_obj, true);
          const DType dtype = x.dtype, state = state_dtype(dtype);
          const int64_t T = x.shape.dims[0], N = x.shape.dims[1];
          const auto decay = scalar_argument(decay_obj, "decay", kCuda, state);
          const Buffer threshold = argument(threshold_obj, "threshold", kCuda, state, {T}, kIn, kState);
          const Buffer sg_param = argument(sg_param_obj, "sg_param", kCuda, state, {T}, kIn, kState);
          const Buffer v_init = optional_argument(v_init_obj, "v_init", kCuda, state, {N}, kIn, kState);
          const Buffer output = argument(output_obj, "output", kCuda, dtype, {T, N}, kOut);
          const Buffer membrane = optional_argument(membrane_obj, "membrane", kCuda, dtype, {T, N}, kOut);
          const Buffer v_last = argument(v_last_obj, "v_last", kCuda, dtype, {N}, kOut);
          require_same_device(x, {&decay.buffer, &threshold, &sg_param, &v_init, &output, &membrane, &v_last});
          require_no_overlap({{&x, kIn}, {&threshold, kIn}, {&sg_param, kIn}, {&v_init, kIn},
                              {&output, kOut}, {&membrane, kOut}, {&v_last, kOut}});
          const sc::NeuronDeviceParams params{T,         N,          decay.value,           v_reset,
                                              threshold.data, sg_param.data, data_or_null(v_init), decay.device};
          py::gil_scoped_release release;
          sc::neuron_forward(options, device_dtype(dtype), params, x.data, output.data, data_or_null(membrane),
                             v_last.data, stream_of(stream));
        },
        py::arg("decay"), py::arg("v_reset"), py::arg("threshold"), py::arg("sg_param"),
        py::arg("v_init").none(true), py::arg("x"), py::arg("output"), py::arg("membrane").none(true),
        py::arg("v_last"), py::kw_only(), py::arg("charge"), py::arg("reset"), py::arg("scale"),
        py::arg("surrogate"), py::arg("smooth"), py::arg("stream"),
        "The neuron forward (cuda.hpp neuron_forward), as spikegrad._core.neuron_forward.");

  m.def("neuron_backward_workspace_bytes",
        [](const py::object& x_obj) {
          const Buffer x = time_major_x(x_obj, true);
          return sc::neuron_backward_workspace_bytes(device_dtype(x.dtype), x.shape.dims[0], x.shape.dims[1]);
        },
        py::arg("x"), "Bytes of the workspace of neuron_backward for x [T, N].");

  m.def("neuron_backward",
        [](const py::object& decay_obj, double v_reset, const py::object& threshold_obj,
           const py::object& sg_param_obj, const py::object& v_init_obj, const py::object& x_obj,
           const py::object& grad_output_obj, const py::object& grad_membrane_obj, const py::object& grad_v_last_obj,
           const py::object& grad_x_obj, const py::object& grad_v_init_obj, const py::object& grad_decay_obj,
           const py::object& grad_threshold_obj, const py::object& grad_sg_param_obj,
           const py::object& workspace_obj, const std::string& charge, const std::string& reset,
           const std::string& scale, const std::string& surrogate, bool smooth, bool detach_reset,
           std::uintptr_t stream) {
          const auto options = spikegrad::parse_neuron_options(charge, reset, scale, surrogate, smooth, detach_reset);
          const Buffer x = time_major_x(x_obj, true);
          const DType dtype = x.dtype, state = state_dtype(dtype);
          const int64_t T = x.shape.dims[0], N = x.shape.dims[1];
          const auto decay = scalar_argument(decay_obj, "decay", kCuda, state);
          const Buffer threshold = argument(threshold_obj, "threshold", kCuda, state, {T}, kIn, kState);
          const Buffer sg_param = argument(sg_param_obj, "sg_param", kCuda, state, {T}, kIn, kState);
          const Buffer v_init = optional_argument(v_init_obj, "v_init", kCuda, state, {N}, kIn, kState);
          const Buffer grad_output = optional_argument(grad_output_obj, "grad_output", kCuda, dtype, {T, N}, kIn);
          const Buffer grad_membrane =
              optional_argument(grad_membrane_obj, "grad_membrane", kCuda, dtype, {T, N}, kIn);
          const Buffer grad_v_last = optional_argument(grad_v_last_obj, "grad_v_last", kCuda, dtype, {N}, kIn);
          const Buffer grad_x = argument(grad_x_obj, "grad_x", kCuda, dtype, {T, N}, kOut);
          const Buffer grad_v_init = argument(grad_v_init_obj, "grad_v_init", kCuda, state, {N}, kOut, kState);
          const Buffer grad_decay =
              optional_argument(grad_decay_obj, "grad_decay", kCuda, DType::Float64, Shape::scalar(), kOut, kSums);
          const Buffer grad_threshold =
              optional_argument(grad_threshold_obj, "grad_threshold", kCuda, DType::Float64, {T}, kOut, kSums);
          const Buffer grad_sg_param =
              optional_argument(grad_sg_param_obj, "grad_sg_param", kCuda, DType::Float64, {T}, kOut, kSums);
          const sc::DType type = device_dtype(dtype);
          const Buffer workspace = workspace_argument(workspace_obj, "workspace", kCuda,
                                                      static_cast<int64_t>(sc::neuron_backward_workspace_bytes(type, T, N)));
          require_same_device(x, {&decay.buffer, &threshold, &sg_param, &v_init, &grad_output, &grad_membrane,
                                  &grad_v_last, &grad_x, &grad_v_init, &grad_decay, &grad_threshold, &grad_sg_param,
                                  &workspace});
          require_no_overlap({{&x, kIn}, {&threshold, kIn}, {&sg_param, kIn}, {&v_init, kIn}, {&grad_output, kIn},
                              {&grad_membrane, kIn}, {&grad_v_last, kIn}, {&grad_x, kOut}, {&grad_v_init, kOut},
                              {&grad_decay, kOut}, {&grad_threshold, kOut}, {&grad_sg_param, kOut},
                              {&workspace, kOut}});
          const sc::NeuronDeviceParams params{T,         N,          decay.value,           v_reset,
                                              threshold.data, sg_param.data, data_or_null(v_init), decay.device};
          py::gil_scoped_release release;
          sc::neuron_backward(options, type, params, x.data, data_or_null(grad_output), data_or_null(grad_membrane),
                              data_or_null(grad_v_last), grad_x.data, grad_v_init.data,
                              data_or_null<double>(grad_decay), data_or_null<double>(grad_threshold),
                              data_or_null<double>(grad_sg_param), workspace.data, stream_of(stream));
        },
        py::arg("decay"), py::arg("v_reset"), py::arg("threshold"), py::arg("sg_param"),
        py::arg("v_init").none(true), py::arg("x"), py::arg("grad_output").none(true),
        py::arg("grad_membrane").none(true), py::arg("grad_v_last").none(true), py::arg("grad_x"),
        py::arg("grad_v_init"), py::arg("grad_decay").none(true), py::arg("grad_threshold").none(true),
        py::arg("grad_sg_param").none(true), py::arg("workspace"), py::kw_only(), py::arg("charge"),
        py::arg("reset"), py::arg("scale"), py::arg("surrogate"), py::arg("smooth"), py::arg("detach_reset"),
        py::arg("stream"),
        "The neuron backward (cuda.hpp neuron_backward), as spikegrad._core.neuron_backward; "
        "grad_v_init is in the state dtype.");

  m.def("multilevel_forward",
        [](const py::object& decay_obj, double theta_p, double theta_n, int k_p, int k_n, const py::object& a_obj,
           const py::object& v_init_obj, const py::object& x_obj, const py::object& output_obj,
           const py::object& membrane_obj, const py::object& v_last_obj, const std::string& surrogate, bool smooth,
           std::uintptr_t stream) {
          const auto options = spikegrad::parse_multilevel_options(surrogate, smooth, false);
          const Buffer x = time_major_x(x_obj, true);
          const DType dtype = x.dtype, state = state_dtype(dtype);
          const int64_t T = x.shape.dims[0], N = x.shape.dims[1];
          const auto decay = scalar_argument(decay_obj, "decay", kCuda, state);
          const Buffer a = argument(a_obj, "a", kCuda, state, {T}, kIn, kState);
          const Buffer v_init = argument(v_init_obj, "v_init", kCuda, state, {N}, kIn, kState);
          const Buffer output = argument(output_obj, "output", kCuda, dtype, {T, N}, kOut);
          const Buffer membrane = optional_argument(membrane_obj, "membrane", kCuda, dtype, {T, N}, kOut);
          const Buffer v_last = argument(v_last_obj, "v_last", kCuda, dtype, {N}, kOut);
          require_same_device(x, {&decay.buffer, &a, &v_init, &output, &membrane, &v_last});
          require_no_overlap({{&x, kIn}, {&a, kIn}, {&v_init, kIn}, {&output, kOut}, {&membrane, kOut},
                              {&v_last, kOut}});
          const sc::MultilevelDeviceParams params{T,   N,   decay.value, theta_p,     theta_n,
                                                  k_p, k_n, a.data,      v_init.data, decay.device};
          py::gil_scoped_release release;
          sc::multilevel_forward(options, device_dtype(dtype), params, x.data, output.data, data_or_null(membrane),
                                 v_last.data, stream_of(stream));
        },
        py::arg("decay"), py::arg("theta_p"), py::arg("theta_n"), py::arg("k_p"), py::arg("k_n"), py::arg("a"),
        py::arg("v_init"), py::arg("x"), py::arg("output"), py::arg("membrane").none(true), py::arg("v_last"),
        py::kw_only(), py::arg("surrogate"), py::arg("smooth"), py::arg("stream"),
        "The CF neuron's forward (cuda.hpp multilevel_forward), as spikegrad._core.multilevel_forward.");

  m.def("multilevel_backward_workspace_bytes",
        [](const py::object& x_obj) {
          const Buffer x = time_major_x(x_obj, true);
          return sc::multilevel_backward_workspace_bytes(device_dtype(x.dtype), x.shape.dims[0], x.shape.dims[1]);
        },
        py::arg("x"), "Bytes of the workspace of multilevel_backward for x [T, N].");

  m.def("multilevel_backward",
        [](const py::object& decay_obj, double theta_p, double theta_n, int k_p, int k_n, const py::object& a_obj,
           const py::object& v_init_obj, const py::object& x_obj, const py::object& grad_output_obj,
           const py::object& grad_membrane_obj, const py::object& grad_v_last_obj, const py::object& grad_x_obj,
           const py::object& grad_v_init_obj, const py::object& grad_decay_obj, const py::object& grad_a_obj,
           const py::object& workspace_obj, const std::string& surrogate, bool smooth, bool detach_reset,
           std::uintptr_t stream) {
          const auto options = spikegrad::parse_multilevel_options(surrogate, smooth, detach_reset);
          const Buffer x = time_major_x(x_obj, true);
          const DType dtype = x.dtype, state = state_dtype(dtype);
          const int64_t T = x.shape.dims[0], N = x.shape.dims[1];
          const auto decay = scalar_argument(decay_obj, "decay", kCuda, state);
          const Buffer a = argument(a_obj, "a", kCuda, state, {T}, kIn, kState);
          const Buffer v_init = argument(v_init_obj, "v_init", kCuda, state, {N}, kIn, kState);
          const Buffer grad_output = optional_argument(grad_output_obj, "grad_output", kCuda, dtype, {T, N}, kIn);
          const Buffer grad_membrane =
              optional_argument(grad_membrane_obj, "grad_membrane", kCuda, dtype, {T, N}, kIn);
          const Buffer grad_v_last = optional_argument(grad_v_last_obj, "grad_v_last", kCuda, dtype, {N}, kIn);
          const Buffer grad_x = argument(grad_x_obj, "grad_x", kCuda, dtype, {T, N}, kOut);
          const Buffer grad_v_init = argument(grad_v_init_obj, "grad_v_init", kCuda, state, {N}, kOut, kState);
          const Buffer grad_decay =
              optional_argument(grad_decay_obj, "grad_decay", kCuda, DType::Float64, Shape::scalar(), kOut, kSums);
          const Buffer grad_a = optional_argument(grad_a_obj, "grad_a", kCuda, DType::Float64, {T}, kOut, kSums);
          const sc::DType type = device_dtype(dtype);
          const Buffer workspace = workspace_argument(
              workspace_obj, "workspace", kCuda, static_cast<int64_t>(sc::multilevel_backward_workspace_bytes(type, T, N)));
          require_same_device(x, {&decay.buffer, &a, &v_init, &grad_output, &grad_membrane, &grad_v_last, &grad_x,
                                  &grad_v_init, &grad_decay, &grad_a, &workspace});
          require_no_overlap({{&x, kIn}, {&a, kIn}, {&v_init, kIn}, {&grad_output, kIn}, {&grad_membrane, kIn},
                              {&grad_v_last, kIn}, {&grad_x, kOut}, {&grad_v_init, kOut}, {&grad_decay, kOut},
                              {&grad_a, kOut}, {&workspace, kOut}});
          const sc::MultilevelDeviceParams params{T,   N,   decay.value, theta_p,     theta_n,
                                                  k_p, k_n, a.data,      v_init.data, decay.device};
          py::gil_scoped_release release;
          sc::multilevel_backward(options, type, params, x.data, data_or_null(grad_output),
                                  data_or_null(grad_membrane), data_or_null(grad_v_last), grad_x.data,
                                  grad_v_init.data, data_or_null<double>(grad_decay), data_or_null<double>(grad_a),
                                  workspace.data, stream_of(stream));
        },
        py::arg("decay"), py::arg("theta_p"), py::arg("theta_n"), py::arg("k_p"), py::arg("k_n"), py::arg("a"),
        py::arg("v_init"), py::arg("x"), py::arg("grad_output").none(true), py::arg("grad_membrane").none(true),
        py::arg("grad_v_last").none(true), py::arg("grad_x"), py::arg("grad_v_init"),
        py::arg("grad_decay").none(true), py::arg("grad_a").none(true), py::arg("workspace"), py::kw_only(),
        py::arg("surrogate"), py::arg("smooth"), py::arg("detach_reset"), py::arg("stream"),
        "The CF neuron's backward (cuda.hpp multilevel_backward): grad_decay and grad_a both given or both "
        "None.");

  m.def("pnb_workspace_bytes",
        [](const py::object& h_obj, int k) {
          const Buffer h = spikegrad::bindings::buffer(h_obj, "h", kCuda);
          spikegrad::bindings::require_data_dtype(h, false);
          return sc::pnb_workspace_bytes(h.shape.numel(), k);
        },
        py::arg("h"), py::arg("k"), "Bytes of the workspace of pnb_partial_sums for h and k levels.");
  m.def("pnb_partial_sums",
        [](const py::object& h_obj, double theta_p, double theta_n, int k, const py::object& sums_obj,
           const py::object& workspace_obj, std::uintptr_t stream) {
          const Buffer h = spikegrad::bindings::buffer(h_obj, "h", kCuda);
          if (!h.present) spikegrad::bindings::type_error("h must not be None");
          const DType dtype = spikegrad::bindings::require_data_dtype(h, false);
          spikegrad::bindings::require(h, dtype, Shape::any(), kIn);
          if (k < 1) spikegrad::bindings::value_error("k must be >= 1, got " + std::to_string(k));
          const int64_t count = h.shape.numel();
          const Buffer sums = argument(sums_obj, "sums", kCuda, DType::Float64, {k, 2, 2}, kOut, kSums);
          const Buffer workspace = workspace_argument(workspace_obj, "workspace", kCuda,
                                                      static_cast<int64_t>(sc::pnb_workspace_bytes(count, k)));
          require_same_device(h, {&sums, &workspace});
          require_no_overlap({{&h, kIn}, {&sums, kOut}, {&workspace, kOut}});
          py::gil_scoped_release release;
          sc::pnb_partial_sums(device_dtype(dtype), h.data, count, theta_p, theta_n, k, sums.as<double>(),
                               workspace.data, stream_of(stream));
        },
        py::arg("h"), py::arg("theta_p"), py::arg("theta_n"), py::arg("k"), py::arg("sums"), py::arg("workspace"),
        py::kw_only(), py::arg("stream"),
        "The PNB partial sums (cuda.hpp pnb_partial_sums), as spikegrad._core.pnb_partial_sums.");

  m.def("adaptive_workspace_bytes",
        [](const py::object& x_obj) {
          const Buffer x = time_major_x(x_obj, false);
          return sc::adaptive_workspace_bytes(x.shape.dims[1]);
        },
        py::arg("x"), "Bytes of the workspace of adaptive_forward for x [T, N].");
  m.def("adaptive_forward",
        [](const py::object& decay_obj, double v_reset, const py::object& v_init_obj, const py::object& x_obj,
           const py::object& output_obj, const py::object& membrane_obj, const py::object& v_last_obj,
           const py::object& threshold_obj, const py::object& sg_param_obj, const py::object& mean_obj,
           const py::object& std_obj, const py::object& h_scratch_obj, const py::object& workspace_obj,
           const std::string& charge, const std::string& reset, const std::string& threshold_mode, double f_c,
           double v_th, bool tgo, const std::string& tgo_driver, double width, std::uintptr_t stream) {
          const auto options = spikegrad::parse_neuron_options(charge, reset, "absolute", "rect", false, false);
          const Buffer x = time_major_x(x_obj, false);
          const DType dtype = x.dtype;
          const int64_t T = x.shape.dims[0], N = x.shape.dims[1];
          const auto decay = scalar_argument(decay_obj, "decay", kCuda, dtype);
          const Buffer v_init = optional_argument(v_init_obj, "v_init", kCuda, dtype, {N}, kIn);
          const Buffer output = argument(output_obj, "output", kCuda, dtype, {T, N}, kOut);
          const Buffer membrane = optional_argument(membrane_obj, "membrane", kCuda, dtype, {T, N}, kOut);
          const Buffer v_last = argument(v_last_obj, "v_last", kCuda, dtype, {N}, kOut);
          const Buffer threshold = argument(threshold_obj, "threshold", kCuda, dtype, {T}, kOut);
          const Buffer sg_param = argument(sg_param_obj, "sg_param", kCuda, dtype, {T}, kOut);
          const char* f64 = "float64 statistics";
          const Buffer mean = argument(mean_obj, "mean", kCuda, DType::Float64, {T}, kOut, f64);
          const Buffer std_dev = argument(std_obj, "std", kCuda, DType::Float64, {T}, kOut, f64);
          const Buffer h_scratch = optional_argument(h_scratch_obj, "h_scratch", kCuda, dtype, {N}, kOut);
          if (!membrane.present && !h_scratch.present) {
            spikegrad::bindings::type_error("h_scratch must not be None when membrane is None");
          }
          const Buffer workspace = workspace_argument(workspace_obj, "workspace", kCuda,
                                                      static_cast<int64_t>(sc::adaptive_workspace_bytes(N)));
          require_same_device(x, {&decay.buffer, &v_init, &output, &membrane, &v_last, &threshold, &sg_param, &mean,
                                  &std_dev, &h_scratch, &workspace});
          require_no_overlap({{&x, kIn}, {&v_init, kIn}, {&output, kOut}, {&membrane, kOut}, {&v_last, kOut},
                              {&threshold, kOut}, {&sg_param, kOut}, {&mean, kOut}, {&std_dev, kOut},
                              {&h_scratch, kOut}, {&workspace, kOut}});
          sc::AdaptiveDeviceParams params;
          params.T = T;
          params.N = N;
          params.decay = decay.value;
          params.v_reset = v_reset;
          params.v_init = data_or_null(v_init);
          params.threshold_mode =
              spikegrad::parse_threshold_mode(threshold_mode) == spikegrad::ThresholdMode::True ? 0 : 1;
          params.f_c = f_c;
          params.v_th = v_th;
          params.tgo = tgo;
          params.tgo_driver = spikegrad::parse_tgo_driver(tgo_driver) == spikegrad::TgoDriver::Std ? 0 : 1;
          params.width = width;
          params.decay_device = decay.device;
          // the membrane, when kept, holds every step's h: then no scratch
          void* h_data = membrane.present ? nullptr : h_scratch.data;
          py::gil_scoped_release release;
          sc::adaptive_forward(options, device_dtype(dtype), params, x.data, output.data, data_or_null(membrane),
                               v_last.data, threshold.data, sg_param.data, mean.as<double>(), std_dev.as<double>(),
                               h_data, workspace.data, stream_of(stream));
        },
        py::arg("decay"), py::arg("v_reset"), py::arg("v_init").none(true), py::arg("x"), py::arg("output"),
        py::arg("membrane").none(true), py::arg("v_last"), py::arg("threshold"), py::arg("sg_param"),
        py::arg("mean"), py::arg("std"), py::arg("h_scratch").none(true), py::arg("workspace"), py::kw_only(),
        py::arg("charge"), py::arg("reset"), py::arg("threshold_mode"), py::arg("f_c"), py::arg("v_th"),
        py::arg("tgo"), py::arg("tgo_driver"), py::arg("width"), py::arg("stream"),
        "DS-ATGO's forward (cuda.hpp adaptive_forward), as spikegrad._core.adaptive_forward; float32 or "
        "float64 x.");

  m.def("ordered_device_sum",
        [](const py::object& values_obj) {
          // a host helper: the values are on the host (a NumPy array or a CPU tensor)
          const Buffer values = argument(values_obj, "values", Placement::Host, DType::Float64, Shape::any(), kIn,
                                         "float64 sums");
          const int64_t count = values.shape.numel();
          return sc::ordered_device_sum(values.as<const double>(), count);
        },
        py::arg("values"),
        "The device's canonical float64 sum order (the second stage of every parameter-gradient "
        "reduction) evaluated on the host, over a host buffer of float64 values (any shape, C order).");
  m.def("device_sum",
        [](const py::object& values_obj, const py::object& out_obj, std::uintptr_t stream) {
          const Buffer values = argument(values_obj, "values", kCuda, DType::Float64, Shape::any(), kIn, kSums);
          const Buffer out = argument(out_obj, "out", kCuda, DType::Float64, Shape::scalar(), kOut, kSums);
          require_same_device(values, {&out});
          require_no_overlap({{&values, kIn}, {&out, kOut}});
          const int64_t count = values.shape.numel();
          py::gil_scoped_release release;
          sc::device_sum(values.as<const double>(), count, out.as<double>(), stream_of(stream));
        },
        py::arg("values"), py::arg("out"), py::kw_only(), py::arg("stream"),
        "The same order on the device: writes the sum of values (float64, any shape) into out (float64 0-d).");
}

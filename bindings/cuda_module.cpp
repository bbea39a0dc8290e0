// bindings/cuda_module.cpp — spikegrad._cuda: the CUDA launchers of spikegrad/cuda.hpp for the
// torch ops (bindings/spikegrad/_cuda_ops.py). No PyTorch here: device pointers and the stream
// (a cudaStream_t) arrive as integers, the caller owns every buffer. Compiled by the host
// compiler; the kernels are in the static library spikegrad::cuda. Test: tests/test_cuda*.py.
#include <spikegrad/adaptive_cpu.hpp>  // parse_threshold_mode, parse_tgo_driver
#include <spikegrad/cuda.hpp>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

namespace py = pybind11;
namespace sc = spikegrad::cuda;

namespace {

sc::DType parse_dtype(const std::string& dtype) {
  if (dtype == "float32") return sc::DType::Float32;
  if (dtype == "float64") return sc::DType::Float64;
  if (dtype == "float16") return sc::DType::Float16;
  if (dtype == "bfloat16") return sc::DType::BFloat16;
  throw py::type_error("dtype must be one of 'float32', 'float64', 'float16', 'bfloat16'; got '" + dtype + "'");
}

template <typename P = void>
P* ptr(std::uintptr_t address) {
  return reinterpret_cast<P*>(address);
}

sc::Stream stream_of(std::uintptr_t stream) { return reinterpret_cast<sc::Stream>(stream); }

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "spikegrad's CUDA kernels on device pointers (integers) and a cudaStream_t (an integer); "
            "used by the torch ops, see docs/cuda.md.";
  m.attr("BLOCK_THREADS") = sc::kBlockThreads;
  m.attr("CHUNK_STEPS") = sc::kChunkSteps;

  m.def("neuron_forward",
        [](const std::string& dtype, int64_t T, int64_t N, double decay, double v_reset, std::uintptr_t threshold,
           std::uintptr_t sg_param, std::uintptr_t v_init, std::uintptr_t x, std::uintptr_t output,
           std::uintptr_t membrane, std::uintptr_t v_last, const std::string& charge, const std::string& reset,
           const std::string& scale, const std::string& surrogate, bool smooth, std::uintptr_t decay_device,
           std::uintptr_t stream) {
          const auto options = spikegrad::parse_neuron_options(charge, reset, scale, surrogate, smooth, false);
          const sc::NeuronDeviceParams params{T,           N,           decay,       v_reset,
                                              ptr(threshold), ptr(sg_param), ptr(v_init), ptr(decay_device)};
          const sc::DType type = parse_dtype(dtype);
          py::gil_scoped_release release;
          sc::neuron_forward(options, type, params, ptr(x), ptr(output), ptr(membrane), ptr(v_last),
                             stream_of(stream));
        },
        py::arg("dtype"), py::arg("T"), py::arg("N"), py::arg("decay"), py::arg("v_reset"), py::arg("threshold"),
        py::arg("sg_param"), py::arg("v_init"), py::arg("x"), py::arg("output"), py::arg("membrane"),
        py::arg("v_last"), py::kw_only(), py::arg("charge"), py::arg("reset"), py::arg("scale"),
        py::arg("surrogate"), py::arg("smooth"), py::arg("decay_device"), py::arg("stream"),
        "The neuron forward (cuda.hpp neuron_forward); membrane may be 0 (not written).");

  m.def("neuron_backward_workspace_bytes",
        [](const std::string& dtype, int64_t T, int64_t N) {
          return sc::neuron_backward_workspace_bytes(parse_dtype(dtype), T, N);
        },
        py::arg("dtype"), py::arg("T"), py::arg("N"));

  m.def("neuron_backward",
        [](const std::string& dtype, int64_t T, int64_t N, double decay, double v_reset, std::uintptr_t threshold,
           std::uintptr_t sg_param, std::uintptr_t v_init, std::uintptr_t x, std::uintptr_t grad_output,
           std::uintptr_t grad_membrane, std::uintptr_t grad_v_last, std::uintptr_t grad_x,
           std::uintptr_t grad_v_init, std::uintptr_t grad_decay, std::uintptr_t grad_threshold,
           std::uintptr_t grad_sg_param, std::uintptr_t workspace, const std::string& charge,
           const std::string& reset, const std::string& scale, const std::string& surrogate, bool smooth,
           bool detach_reset, std::uintptr_t decay_device, std::uintptr_t stream) {
          const auto options = spikegrad::parse_neuron_options(charge, reset, scale, surrogate, smooth, detach_reset);
          const sc::NeuronDeviceParams params{T,           N,           decay,       v_reset,
                                              ptr(threshold), ptr(sg_param), ptr(v_init), ptr(decay_device)};
          const sc::DType type = parse_dtype(dtype);
          py::gil_scoped_release release;
          sc::neuron_backward(options, type, params, ptr(x), ptr(grad_output), ptr(grad_membrane), ptr(grad_v_last),
                              ptr(grad_x), ptr(grad_v_init), ptr<double>(grad_decay), ptr<double>(grad_threshold),
                              ptr<double>(grad_sg_param), ptr(workspace), stream_of(stream));
        },
        py::arg("dtype"), py::arg("T"), py::arg("N"), py::arg("decay"), py::arg("v_reset"), py::arg("threshold"),
        py::arg("sg_param"), py::arg("v_init"), py::arg("x"), py::arg("grad_output"), py::arg("grad_membrane"),
        py::arg("grad_v_last"), py::arg("grad_x"), py::arg("grad_v_init"), py::arg("grad_decay"),
        py::arg("grad_threshold"), py::arg("grad_sg_param"), py::arg("workspace"), py::kw_only(),
        py::arg("charge"), py::arg("reset"), py::arg("scale"), py::arg("surrogate"), py::arg("smooth"),
        py::arg("detach_reset"), py::arg("decay_device"), py::arg("stream"),
        "The neuron backward (cuda.hpp neuron_backward); absent gradients are 0 (zero).");

  m.def("multilevel_forward",
        [](const std::string& dtype, int64_t T, int64_t N, double decay, double theta_p, double theta_n, int k_p,
           int k_n, std::uintptr_t a, std::uintptr_t v_init, std::uintptr_t x, std::uintptr_t output,
           std::uintptr_t membrane, std::uintptr_t v_last, const std::string& surrogate, bool smooth,
           std::uintptr_t decay_device, std::uintptr_t stream) {
          const auto options = spikegrad::parse_multilevel_options(surrogate, smooth, false);
          const sc::MultilevelDeviceParams params{T,       N,   decay,  theta_p,    theta_n,
                                                  k_p,     k_n, ptr(a), ptr(v_init), ptr(decay_device)};
          const sc::DType type = parse_dtype(dtype);
          py::gil_scoped_release release;
          sc::multilevel_forward(options, type, params, ptr(x), ptr(output), ptr(membrane), ptr(v_last),
                                 stream_of(stream));
        },
        py::arg("dtype"), py::arg("T"), py::arg("N"), py::arg("decay"), py::arg("theta_p"), py::arg("theta_n"),
        py::arg("k_p"), py::arg("k_n"), py::arg("a"), py::arg("v_init"), py::arg("x"), py::arg("output"),
        py::arg("membrane"), py::arg("v_last"), py::kw_only(), py::arg("surrogate"), py::arg("smooth"),
        py::arg("decay_device"), py::arg("stream"));

  m.def("multilevel_backward_workspace_bytes",
        [](const std::string& dtype, int64_t T, int64_t N) {
          return sc::multilevel_backward_workspace_bytes(parse_dtype(dtype), T, N);
        },
        py::arg("dtype"), py::arg("T"), py::arg("N"));

  m.def("multilevel_backward",
        [](const std::string& dtype, int64_t T, int64_t N, double decay, double theta_p, double theta_n, int k_p,
           int k_n, std::uintptr_t a, std::uintptr_t v_init, std::uintptr_t x, std::uintptr_t grad_output,
           std::uintptr_t grad_membrane, std::uintptr_t grad_v_last, std::uintptr_t grad_x,
           std::uintptr_t grad_v_init, std::uintptr_t grad_decay, std::uintptr_t grad_a, std::uintptr_t workspace,
           const std::string& surrogate, bool smooth, bool detach_reset, std::uintptr_t decay_device,
           std::uintptr_t stream) {
          const auto options = spikegrad::parse_multilevel_options(surrogate, smooth, detach_reset);
          const sc::MultilevelDeviceParams params{T,       N,   decay,  theta_p,    theta_n,
                                                  k_p,     k_n, ptr(a), ptr(v_init), ptr(decay_device)};
          const sc::DType type = parse_dtype(dtype);
          py::gil_scoped_release release;
          sc::multilevel_backward(options, type, params, ptr(x), ptr(grad_output), ptr(grad_membrane),
                                  ptr(grad_v_last), ptr(grad_x), ptr(grad_v_init), ptr<double>(grad_decay),
                                  ptr<double>(grad_a), ptr(workspace), stream_of(stream));
        },
        py::arg("dtype"), py::arg("T"), py::arg("N"), py::arg("decay"), py::arg("theta_p"), py::arg("theta_n"),
        py::arg("k_p"), py::arg("k_n"), py::arg("a"), py::arg("v_init"), py::arg("x"), py::arg("grad_output"),
        py::arg("grad_membrane"), py::arg("grad_v_last"), py::arg("grad_x"), py::arg("grad_v_init"),
        py::arg("grad_decay"), py::arg("grad_a"), py::arg("workspace"), py::kw_only(), py::arg("surrogate"),
        py::arg("smooth"), py::arg("detach_reset"), py::arg("decay_device"), py::arg("stream"));

  m.def("pnb_workspace_bytes", &sc::pnb_workspace_bytes, py::arg("count"), py::arg("k"));
  m.def("pnb_partial_sums",
        [](const std::string& dtype, std::uintptr_t h, int64_t count, double theta_p, double theta_n, int k,
           std::uintptr_t sums, std::uintptr_t workspace, std::uintptr_t stream) {
          const sc::DType type = parse_dtype(dtype);
          py::gil_scoped_release release;
          sc::pnb_partial_sums(type, ptr(h), count, theta_p, theta_n, k, ptr<double>(sums), ptr(workspace),
                               stream_of(stream));
        },
        py::arg("dtype"), py::arg("h"), py::arg("count"), py::arg("theta_p"), py::arg("theta_n"), py::arg("k"),
        py::arg("sums"), py::arg("workspace"), py::kw_only(), py::arg("stream"));

  m.def("adaptive_workspace_bytes", &sc::adaptive_workspace_bytes, py::arg("N"));
  m.def("adaptive_forward",
        [](const std::string& dtype, int64_t T, int64_t N, double decay, double v_reset, std::uintptr_t v_init,
           std::uintptr_t x, std::uintptr_t output, std::uintptr_t membrane, std::uintptr_t v_last,
           std::uintptr_t threshold, std::uintptr_t sg_param, std::uintptr_t mean, std::uintptr_t std_dev,
           std::uintptr_t h_scratch, std::uintptr_t workspace, const std::string& charge, const std::string& reset,
           const std::string& threshold_mode, double f_c, double v_th, bool tgo, const std::string& tgo_driver,
           double width, std::uintptr_t decay_device, std::uintptr_t stream) {
          const auto options = spikegrad::parse_neuron_options(charge, reset, "absolute", "rect", false, false);
          sc::AdaptiveDeviceParams params;
          params.T = T;
          params.N = N;
          params.decay = decay;
          params.v_reset = v_reset;
          params.v_init = ptr(v_init);
          params.threshold_mode = spikegrad::parse_threshold_mode(threshold_mode) == spikegrad::ThresholdMode::True ? 0 : 1;
          params.f_c = f_c;
          params.v_th = v_th;
          params.tgo = tgo;
          params.tgo_driver = spikegrad::parse_tgo_driver(tgo_driver) == spikegrad::TgoDriver::Std ? 0 : 1;
          params.width = width;
          params.decay_device = ptr(decay_device);
          const sc::DType type = parse_dtype(dtype);
          py::gil_scoped_release release;
          sc::adaptive_forward(options, type, params, ptr(x), ptr(output), ptr(membrane), ptr(v_last),
                               ptr(threshold), ptr(sg_param), ptr<double>(mean), ptr<double>(std_dev),
                               ptr(h_scratch), ptr(workspace), stream_of(stream));
        },
        py::arg("dtype"), py::arg("T"), py::arg("N"), py::arg("decay"), py::arg("v_reset"), py::arg("v_init"),
        py::arg("x"), py::arg("output"), py::arg("membrane"), py::arg("v_last"), py::arg("threshold"),
        py::arg("sg_param"), py::arg("mean"), py::arg("std"), py::arg("h_scratch"), py::arg("workspace"),
        py::kw_only(), py::arg("charge"), py::arg("reset"), py::arg("threshold_mode"), py::arg("f_c"),
        py::arg("v_th"), py::arg("tgo"), py::arg("tgo_driver"), py::arg("width"), py::arg("decay_device"),
        py::arg("stream"));

  m.def("ordered_device_sum",
        [](py::array_t<double, py::array::c_style | py::array::forcecast> values) {
          return sc::ordered_device_sum(values.data(), static_cast<int64_t>(values.size()));
        },
        py::arg("values"),
        "The device's canonical float64 sum order (the second stage of every parameter-gradient "
        "reduction) evaluated on the host.");
  m.def("device_sum",
        [](std::uintptr_t values, int64_t M, std::uintptr_t out, std::uintptr_t stream) {
          py::gil_scoped_release release;
          sc::device_sum(ptr<const double>(values), M, ptr<double>(out), stream_of(stream));
        },
        py::arg("values"), py::arg("M"), py::arg("out"), py::kw_only(), py::arg("stream"));
}

// bindings/adaptive_bindings.hpp — the DS-ATGO adaptive-threshold kernels (adaptive_cpu.hpp) on
// host buffers. Included by core.cpp inside its anonymous namespace; its buffers are checked by
// bindings/buffers.hpp, in core.cpp's calling convention; bind_adaptive(m) adds the ops.
// Test: tests/nn/test_atgo.py.
#pragma once

spikegrad::AdaptiveParams<double> adaptive_params_untyped(double decay, double v_reset, const std::string& threshold_mode,
                                                          double f_c, double v_th, bool tgo,
                                                          const std::string& tgo_driver, double width) {
  spikegrad::AdaptiveParams<double> params;
  params.decay = decay;
  params.v_reset = v_reset;
  params.threshold_mode = spikegrad::parse_threshold_mode(threshold_mode);
  params.f_c = f_c;
  params.v_th = v_th;
  params.tgo = tgo;
  params.tgo_driver = spikegrad::parse_tgo_driver(tgo_driver);
  params.width = width;
  return params;
}

template <typename real>
spikegrad::AdaptiveParams<real> typed(const spikegrad::AdaptiveParams<double>& p) {
  spikegrad::AdaptiveParams<real> params;
  params.decay = static_cast<real>(p.decay);
  params.v_reset = static_cast<real>(p.v_reset);
  params.threshold_mode = p.threshold_mode;
  params.f_c = p.f_c;
  params.v_th = p.v_th;
  params.tgo = p.tgo;
  params.tgo_driver = p.tgo_driver;
  params.width = p.width;
  return params;
}

int64_t adaptive_workspace_bytes(const py::object& x_obj) {
  const Buffer x = spikegrad::bindings::buffer(x_obj, "x", kHost);
  require_time_major(x, false);
  return bytes_of_doubles(static_cast<std::size_t>(spikegrad::adaptive_workspace_size(x.shape.dims[1])));
}

void adaptive_forward(const py::object& decay_obj, double v_reset, const py::object& v_init_obj,
                      const py::object& x_obj, const py::object& output_obj, const py::object& membrane_obj,
                      const py::object& v_last_obj, const py::object& threshold_obj, const py::object& sg_param_obj,
                      const py::object& mean_obj, const py::object& std_obj, const py::object& h_scratch_obj,
                      const py::object& workspace_obj, const std::string& charge, const std::string& reset,
                      const std::string& threshold_mode, double f_c, double v_th, bool tgo,
                      const std::string& tgo_driver, double width, int num_threads) {
  spikegrad::NeuronOptions options;
  options.charge = spikegrad::parse_charge(charge);
  options.reset = spikegrad::parse_reset(reset);
  const Buffer x = spikegrad::bindings::buffer(x_obj, "x", kHost);
  const DType dtype = require_time_major(x, false);
  const int64_t T = x.shape.dims[0], N = x.shape.dims[1];
  const auto decay = scalar_argument(decay_obj, "decay", kHost, dtype);
  const spikegrad::AdaptiveParams<double> untyped =
      adaptive_params_untyped(decay.value, v_reset, threshold_mode, f_c, v_th, tgo, tgo_driver, width);
  const Buffer v_init = optional_argument(v_init_obj, "v_init", kHost, dtype, {N}, kIn);  // None: zeros
  const Buffer output = argument(output_obj, "output", kHost, dtype, {T, N}, kOut);
  const Buffer membrane = optional_argument(membrane_obj, "membrane", kHost, dtype, {T, N}, kOut);
  const Buffer v_last = argument(v_last_obj, "v_last", kHost, dtype, {N}, kOut);
  const Buffer threshold = argument(threshold_obj, "threshold", kHost, dtype, {T}, kOut);
  const Buffer sg_param = argument(sg_param_obj, "sg_param", kHost, dtype, {T}, kOut);
  const char* f64 = "float64 statistics";
  const Buffer mean = argument(mean_obj, "mean", kHost, DType::Float64, {T}, kOut, f64);
  const Buffer std_dev = argument(std_obj, "std", kHost, DType::Float64, {T}, kOut, f64);
  // one step's h when the membrane is not kept
  const Buffer h_scratch = optional_argument(h_scratch_obj, "h_scratch", kHost, dtype, {N}, kOut);
  if (!membrane.present && !h_scratch.present) {
    spikegrad::bindings::type_error("h_scratch must not be None when membrane is None");
  }
  const Buffer workspace = workspace_argument(
      workspace_obj, "workspace", kHost, bytes_of_doubles(static_cast<std::size_t>(spikegrad::adaptive_workspace_size(N))));
  require_no_overlap({{&x, kIn}, {&v_init, kIn}, {&output, kOut}, {&membrane, kOut}, {&v_last, kOut},
                      {&threshold, kOut}, {&sg_param, kOut}, {&mean, kOut}, {&std_dev, kOut}, {&h_scratch, kOut},
                      {&workspace, kOut}});
  with_real(dtype, [&](auto zero) {
    using real = decltype(zero);
    spikegrad::AdaptiveParams<real> params = typed<real>(untyped);
    params.T = T;
    params.N = N;
    params.v_init = data_or_null<real>(v_init);
    py::gil_scoped_release release;
    spikegrad::adaptive_forward_cpu(options, params, x.as<const real>(), output.as<real>(),
                                    mutable_data_or_null<real>(membrane), v_last.as<real>(), threshold.as<real>(),
                                    sg_param.as<real>(), mean.as<double>(), std_dev.as<double>(),
                                    membrane.present ? nullptr : h_scratch.as<real>(), workspace.as<double>(),
                                    num_threads);
  });
}

// The step functions, for a data-parallel caller: [N] buffers; each returns its per-block float64
// sums (a small result of a length the caller need not know).
DType require_step_vector(const Buffer& b) {
  if (!b.present) spikegrad::bindings::type_error(std::string(b.name) + " must not be None");
  const DType dtype = spikegrad::bindings::require_data_dtype(b, false);
  if (b.shape.ndim != 1) spikegrad::bindings::value_error(std::string(b.name) + " must be 1-D [N], got shape " + b.shape.str());
  return dtype;
}

py::array_t<double> adaptive_charge_step(const py::object& x_obj, const py::object& v_obj, const py::object& h_obj,
                                         double decay, double v_reset, const std::string& charge, int num_threads) {
  const spikegrad::Charge charge_kind = spikegrad::parse_charge(charge);
  const Buffer x = spikegrad::bindings::buffer(x_obj, "x_t", kHost);
  const DType dtype = require_step_vector(x);
  const int64_t N = x.shape.dims[0];
  spikegrad::bindings::require(x, dtype, {N}, kIn);
  const Buffer v = argument(v_obj, "v", kHost, dtype, {N}, kIn);
  const Buffer h = argument(h_obj, "h", kHost, dtype, {N}, kOut);
  require_no_overlap({{&x, kIn}, {&v, kIn}, {&h, kOut}});
  py::array_t<double> block_sums(static_cast<py::ssize_t>(spikegrad::adaptive_workspace_size(N)));
  double* sums = block_sums.mutable_data();
  with_real(dtype, [&](auto zero) {
    using real = decltype(zero);
    py::gil_scoped_release release;
    spikegrad::adaptive_charge_step<real>(charge_kind, N, x.as<const real>(), v.as<const real>(), h.as<real>(),
                                          static_cast<real>(decay), static_cast<real>(v_reset), sums, num_threads);
  });
  return block_sums;
}

py::array_t<double> adaptive_deviation_step(const py::object& h_obj, double mean, int num_threads) {
  const Buffer h = spikegrad::bindings::buffer(h_obj, "h", kHost);
  const DType dtype = require_step_vector(h);
  const int64_t N = h.shape.dims[0];
  spikegrad::bindings::require(h, dtype, {N}, kIn);
  py::array_t<double> block_sums(static_cast<py::ssize_t>(spikegrad::adaptive_workspace_size(N)));
  double* sums = block_sums.mutable_data();
  with_real(dtype, [&](auto zero) {
    using real = decltype(zero);
    py::gil_scoped_release release;
    spikegrad::adaptive_deviation_step<real>(N, h.as<const real>(), mean, sums, num_threads);
  });
  return block_sums;
}

void adaptive_fire_step(const py::object& h_obj, const py::object& v_obj, const py::object& output_obj,
                        double threshold, double v_reset, const std::string& reset, int num_threads) {
  const spikegrad::Reset reset_kind = spikegrad::parse_reset(reset);
  const Buffer h = spikegrad::bindings::buffer(h_obj, "h", kHost);
  const DType dtype = require_step_vector(h);
  const int64_t N = h.shape.dims[0];
  spikegrad::bindings::require(h, dtype, {N}, kIn);
  const Buffer v = argument(v_obj, "v", kHost, dtype, {N}, kOut);
  const Buffer output = argument(output_obj, "output", kHost, dtype, {N}, kOut);
  require_no_overlap({{&h, kIn}, {&v, kOut}, {&output, kOut}});
  with_real(dtype, [&](auto zero) {
    using real = decltype(zero);
    py::gil_scoped_release release;
    spikegrad::adaptive_fire_step<real>(reset_kind, N, h.as<const real>(), v.as<real>(), output.as<real>(),
                                        static_cast<real>(threshold), static_cast<real>(v_reset), num_threads);
  });
}

// theta[t] and k_t from the step's statistics, rounded to `dtype` (returned as Python floats).
py::tuple adaptive_step_values(double sum, double sum_squared_deviations, int64_t N, int64_t t, double decay,
                               const py::dtype& dtype, const std::string& threshold_mode, double f_c, double v_th,
                               bool tgo, const std::string& tgo_driver, double width) {
  const spikegrad::AdaptiveParams<double> untyped =
      adaptive_params_untyped(decay, 0.0, threshold_mode, f_c, v_th, tgo, tgo_driver, width);
  if (N < 2) {
    throw py::value_error("the adaptive threshold needs N >= 2 neurons (the std divides by N - 1), got N = " +
                          std::to_string(N));
  }
  const double mean = spikegrad::layer_mean(sum, N);
  const double std_dev = spikegrad::layer_std(sum_squared_deviations, N);
  auto values = [&](auto zero) {
    using real = decltype(zero);
    const spikegrad::AdaptiveParams<real> params = typed<real>(untyped);
    const spikegrad::AdaptiveStepValues<real> v = spikegrad::adaptive_step_values(params, mean, std_dev);
    spikegrad::check_adaptive_step(params, v, mean, std_dev, t);
    return py::make_tuple(static_cast<double>(v.threshold), static_cast<double>(v.width), mean, std_dev);
  };
  if (dtype.equal(py::dtype::of<float>())) return values(0.0f);
  if (dtype.equal(py::dtype::of<double>())) return values(0.0);
  throw py::type_error("dtype must be float32 or float64, got " + py::str(dtype).cast<std::string>());
}

// combine_block_sums (ordered_sum, spikegrad/portable.hpp) over float64 partial sums: the canonical
// order in which the layer's per-block sums (of one rank, or of all ranks in rank order) are added.
double adaptive_combine_block_sums(const py::array_t<double, py::array::c_style | py::array::forcecast>& partials) {
  if (partials.ndim() != 1) {
    spikegrad::bindings::value_error("partials must be 1-D, got " + std::to_string(partials.ndim()) + "-D");
  }
  const double* data = partials.data();
  const auto count = static_cast<int64_t>(partials.shape(0));
  return spikegrad::combine_block_sums(data, count);
}

// detail::portable_tanh (spikegrad/portable.hpp), the tanh of the TGO width k_t, elementwise.
py::array_t<double> portable_tanh(const py::array_t<double, py::array::c_style | py::array::forcecast>& x) {
  py::array_t<double> out(static_cast<py::ssize_t>(x.size()));
  const double* in = x.data();
  double* result = out.mutable_data();
  for (py::ssize_t i = 0; i < x.size(); ++i) result[i] = spikegrad::detail::portable_tanh(in[i]);
  return out;
}

void bind_adaptive(py::module_& m) {
  m.def("adaptive_workspace_bytes", &adaptive_workspace_bytes, py::arg("x"),
        "Bytes of the workspace of adaptive_forward for x [T, N] (the per-block float64 sums).");
  m.def("adaptive_forward", &adaptive_forward, py::arg("decay"), py::arg("v_reset"), py::arg("v_init").none(true),
        py::arg("x"), py::arg("output"), py::arg("membrane").none(true), py::arg("v_last"), py::arg("threshold"),
        py::arg("sg_param"), py::arg("mean"), py::arg("std"), py::arg("h_scratch").none(true), py::arg("workspace"),
        py::kw_only(), py::arg("charge"), py::arg("reset"), py::arg("threshold_mode"), py::arg("f_c"),
        py::arg("v_th"), py::arg("tgo"), py::arg("tgo_driver"), py::arg("width"), py::arg("num_threads") = 0,
        R"doc(DS-ATGO's training forward (docs/spec.md §2 "AT", docs/spec.md §5 "TGO"), fused over T.

decay (a float or a 0-d buffer), v_reset: cast to x's dtype. v_init: [N], or None for zeros.
x: [T, N] input current (N: the whole batch; N >= 2). Writes output: [T, N], membrane: [T, N]
(h[t]) unless None, v_last: [N], threshold, sg_param: [T] (x's dtype; theta[t] and the rect
width k_t used), mean, std: float64 [T] (the statistics of h[t] over the N neurons, std with
Bessel's correction). h_scratch: [N], one step's h, needed when membrane is None (else None).
workspace: uint8, adaptive_workspace_bytes(x) bytes.
threshold_mode: 'true' (f_c * (mean + std)) | 'estimated' (f_c * sqrt(1 + decay^2) * v_th);
tgo: width schedule width * (1 + tanh(d - v_th)), d = std ('std') or theta ('threshold').
Bit-identical to spikegrad.ref.adaptive.forward for any num_threads.)doc");
  m.def("adaptive_charge_step", &adaptive_charge_step, py::arg("x_t"), py::arg("v"), py::arg("h"), py::arg("decay"),
        py::arg("v_reset"), py::kw_only(), py::arg("charge"), py::arg("num_threads") = 0,
        "One step's charge: writes h = charge(v, x_t) ([N]); returns the per-block float64 sums of h.");
  m.def("adaptive_deviation_step", &adaptive_deviation_step, py::arg("h"), py::arg("mean"), py::kw_only(),
        py::arg("num_threads") = 0, "Returns the per-block float64 sums of (h - mean)^2 ([N] h).");
  m.def("adaptive_fire_step", &adaptive_fire_step, py::arg("h"), py::arg("v"), py::arg("output"),
        py::arg("threshold"), py::arg("v_reset"), py::kw_only(), py::arg("reset"), py::arg("num_threads") = 0,
        "One step's fire and reset with threshold theta (cast to h's dtype): writes output = H(h - theta) and v.");
  m.def("adaptive_step_values", &adaptive_step_values, py::arg("sum"), py::arg("sum_squared_deviations"),
        py::arg("N"), py::arg("t"), py::arg("decay"), py::arg("dtype"), py::kw_only(), py::arg("threshold_mode"), py::arg("f_c"),
        py::arg("v_th"), py::arg("tgo"), py::arg("tgo_driver"), py::arg("width"),
        "From the layer's (combined) sums: returns (theta, width, mean, std), theta and width rounded to dtype.");
  m.def("adaptive_combine_block_sums", &adaptive_combine_block_sums, py::arg("partials"),
        "The float64 partial sums added in the canonical order (spikegrad.ref.adaptive.combine_partial_sums).");
  m.def("portable_tanh", &portable_tanh, py::arg("x"),
        "spikegrad's tanh of the TGO width (spikegrad.ref.adaptive.portable_tanh), elementwise on float64; "
        "returns a flat float64 array.");
}

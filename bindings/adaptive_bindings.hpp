// bindings/adaptive_bindings.hpp — the DS-ATGO adaptive-threshold kernels (adaptive_cpu.hpp) on
// NumPy buffers. Included by core.cpp inside its anonymous namespace, after its buffer checks
// (checked, as_array, dtype_of_x, check_no_overlap), which it reuses; bind_adaptive(m) adds the ops.
// Test: tests/test_atgo.py.
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

void adaptive_forward(const py::object& x_obj, double decay, double v_reset, const py::object& v_init_obj,
                      const py::object& output_obj, const py::object& membrane_obj, const py::object& v_last_obj,
                      const py::object& threshold_obj, const py::object& sg_param_obj, const py::object& mean_obj,
                      const py::object& std_obj, const std::string& charge, const std::string& reset,
                      const std::string& threshold_mode, double f_c, double v_th, bool tgo,
                      const std::string& tgo_driver, double width, int num_threads) {
  spikegrad::NeuronOptions options;
  options.charge = spikegrad::parse_charge(charge);
  options.reset = spikegrad::parse_reset(reset);
  const spikegrad::AdaptiveParams<double> untyped =
      adaptive_params_untyped(decay, v_reset, threshold_mode, f_c, v_th, tgo, tgo_driver, width);
  py::array x = as_array(x_obj, "x");
  const py::dtype dtype = dtype_of_x(x);
  if (x.ndim() != 2) throw py::value_error("x must be 2-D [T, N], got shape " + shape_string(x));
  const int64_t T = static_cast<int64_t>(x.shape(0)), N = static_cast<int64_t>(x.shape(1));
  x = checked(x, "x", dtype, {T, N}, false);
  const bool has_v_init = !v_init_obj.is_none();  // None: v[-1] = 0 without an array of zeros
  py::array v_init;
  if (has_v_init) v_init = checked(v_init_obj, "v_init", dtype, {N}, false);
  py::array output = checked(output_obj, "output", dtype, {T, N}, true);
  py::array membrane;
  const bool has_membrane = !membrane_obj.is_none();
  if (has_membrane) membrane = checked(membrane_obj, "membrane", dtype, {T, N}, true);
  py::array v_last = checked(v_last_obj, "v_last", dtype, {N}, true);
  py::array threshold = checked(threshold_obj, "threshold", dtype, {T}, true);
  py::array sg_param = checked(sg_param_obj, "sg_param", dtype, {T}, true);
  const py::dtype f64 = py::dtype::of<double>();
  py::array mean = checked(mean_obj, "mean", f64, {T}, true);
  py::array std_dev = checked(std_obj, "std", f64, {T}, true);
  py::array* membrane_ptr = has_membrane ? &membrane : nullptr;
  check_no_overlap({{"x", &x, false},
                    {"v_init", has_v_init ? &v_init : nullptr, false},
                    {"output", &output, true},
                    {"membrane", membrane_ptr, true},
                    {"v_last", &v_last, true},
                    {"threshold", &threshold, true},
                    {"sg_param", &sg_param, true},
                    {"mean", &mean, true},
                    {"std", &std_dev, true}});
  // small scratch: one step's h (when the membrane is not kept) and the per-block sums
  std::vector<double> workspace(static_cast<std::size_t>(spikegrad::adaptive_workspace_size(N)));

  auto run = [&](auto zero) {
    using real = decltype(zero);
    spikegrad::AdaptiveParams<real> params = typed<real>(untyped);
    params.T = T;
    params.N = N;
    params.v_init = has_v_init ? static_cast<const real*>(v_init.data()) : nullptr;
    const real* x_data = static_cast<const real*>(x.data());
    real* output_data = static_cast<real*>(output.mutable_data());
    real* membrane_data = mutable_data_or_null<real>(membrane_ptr);
    real* v_last_data = static_cast<real*>(v_last.mutable_data());
    real* threshold_data = static_cast<real*>(threshold.mutable_data());
    real* sg_param_data = static_cast<real*>(sg_param.mutable_data());
    double* mean_data = static_cast<double*>(mean.mutable_data());
    double* std_data = static_cast<double*>(std_dev.mutable_data());
    // not value-initialised: the kernel writes every h before reading it, and zeroing [N] would
    // be one more pass over it
    std::unique_ptr<real[]> h_scratch(has_membrane ? nullptr : new real[static_cast<std::size_t>(N)]);
    real* h_data = h_scratch.get();
    py::gil_scoped_release release;
    spikegrad::adaptive_forward_cpu(options, params, x_data, output_data, membrane_data, v_last_data, threshold_data,
                                    sg_param_data, mean_data, std_data, h_data, workspace.data(), num_threads);
  };
  if (dtype.equal(py::dtype::of<float>())) {
    run(0.0f);
  } else {
    run(0.0);
  }
}

// The step functions, for a data-parallel caller. Each returns the per-block float64 sums.
py::array_t<double> adaptive_charge_step(const py::object& x_obj, const py::object& v_obj, const py::object& h_obj,
                                         double decay, double v_reset, const std::string& charge, int num_threads) {
  const spikegrad::Charge charge_kind = spikegrad::parse_charge(charge);
  py::array x = as_array(x_obj, "x_t");
  const py::dtype dtype = dtype_of_x(x);
  if (x.ndim() != 1) throw py::value_error("x_t must be 1-D [N], got shape " + shape_string(x));
  const int64_t N = static_cast<int64_t>(x.shape(0));
  x = checked(x, "x_t", dtype, {N}, false);
  py::array v = checked(v_obj, "v", dtype, {N}, false);
  py::array h = checked(h_obj, "h", dtype, {N}, true);
  check_no_overlap({{"x_t", &x, false}, {"v", &v, false}, {"h", &h, true}});
  py::array_t<double> block_sums(static_cast<py::ssize_t>(spikegrad::adaptive_workspace_size(N)));
  auto run = [&](auto zero) {
    using real = decltype(zero);
    const real* x_data = static_cast<const real*>(x.data());
    const real* v_data = static_cast<const real*>(v.data());
    real* h_data = static_cast<real*>(h.mutable_data());
    double* sums = block_sums.mutable_data();
    py::gil_scoped_release release;
    spikegrad::adaptive_charge_step<real>(charge_kind, N, x_data, v_data, h_data, static_cast<real>(decay),
                                          static_cast<real>(v_reset), sums, num_threads);
  };
  if (dtype.equal(py::dtype::of<float>())) {
    run(0.0f);
  } else {
    run(0.0);
  }
  return block_sums;
}

py::array_t<double> adaptive_deviation_step(const py::object& h_obj, double mean, int num_threads) {
  py::array h = as_array(h_obj, "h");
  const py::dtype dtype = dtype_of_x(h);
  if (h.ndim() != 1) throw py::value_error("h must be 1-D [N], got shape " + shape_string(h));
  const int64_t N = static_cast<int64_t>(h.shape(0));
  h = checked(h, "h", dtype, {N}, false);
  py::array_t<double> block_sums(static_cast<py::ssize_t>(spikegrad::adaptive_workspace_size(N)));
  auto run = [&](auto zero) {
    using real = decltype(zero);
    const real* h_data = static_cast<const real*>(h.data());
    double* sums = block_sums.mutable_data();
    py::gil_scoped_release release;
    spikegrad::adaptive_deviation_step<real>(N, h_data, mean, sums, num_threads);
  };
  if (dtype.equal(py::dtype::of<float>())) {
    run(0.0f);
  } else {
    run(0.0);
  }
  return block_sums;
}

void adaptive_fire_step(const py::object& h_obj, const py::object& v_obj, const py::object& output_obj,
                        double threshold, double v_reset, const std::string& reset, int num_threads) {
  const spikegrad::Reset reset_kind = spikegrad::parse_reset(reset);
  py::array h = as_array(h_obj, "h");
  const py::dtype dtype = dtype_of_x(h);
  if (h.ndim() != 1) throw py::value_error("h must be 1-D [N], got shape " + shape_string(h));
  const int64_t N = static_cast<int64_t>(h.shape(0));
  h = checked(h, "h", dtype, {N}, false);
  py::array v = checked(v_obj, "v", dtype, {N}, true);
  py::array output = checked(output_obj, "output", dtype, {N}, true);
  check_no_overlap({{"h", &h, false}, {"v", &v, true}, {"output", &output, true}});
  auto run = [&](auto zero) {
    using real = decltype(zero);
    const real* h_data = static_cast<const real*>(h.data());
    real* v_data = static_cast<real*>(v.mutable_data());
    real* output_data = static_cast<real*>(output.mutable_data());
    py::gil_scoped_release release;
    spikegrad::adaptive_fire_step<real>(reset_kind, N, h_data, v_data, output_data, static_cast<real>(threshold),
                                        static_cast<real>(v_reset), num_threads);
  };
  if (dtype.equal(py::dtype::of<float>())) {
    run(0.0f);
  } else {
    run(0.0);
  }
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
  if (partials.ndim() != 1) throw py::value_error("partials must be 1-D, got shape " + shape_string(partials));
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
  m.def("adaptive_forward", &adaptive_forward, py::arg("x"), py::arg("decay"), py::arg("v_reset"),
        py::arg("v_init").none(true), py::arg("output"), py::arg("membrane").none(true), py::arg("v_last"),
        py::arg("threshold"),
        py::arg("sg_param"), py::arg("mean"), py::arg("std"), py::kw_only(), py::arg("charge"), py::arg("reset"),
        py::arg("threshold_mode"), py::arg("f_c"), py::arg("v_th"), py::arg("tgo"), py::arg("tgo_driver"),
        py::arg("width"), py::arg("num_threads") = 0,
        R"doc(DS-ATGO's training forward (docs/spec.md §2 "AT", docs/spec.md §5 "TGO"), fused over T.

x: [T, N] input current (N: the whole batch; N >= 2). decay, v_reset: floats (cast to x's dtype).
v_init: [N], or None for zeros. Writes output: [T, N], membrane: [T, N] (h[t]) unless None, v_last: [N],
threshold, sg_param: [T] (x's dtype; theta[t] and the rect width k_t used),
mean, std: float64 [T] (the statistics of h[t] over the N neurons, std with Bessel's correction).
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

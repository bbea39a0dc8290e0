// bindings/multilevel_bindings.hpp — the m.defs of the CF neuron and the PNB partial sums
// (cpp/include/spikegrad/{multilevel,pnb}_cpu.hpp). Included by core.cpp inside its anonymous
// namespace, after its buffer checks (checked, as_array, check_no_overlap), which it reuses.

spikegrad::MultilevelParams<double> multilevel_scalars(double decay, double theta_p, double theta_n, int k_p,
                                                       int k_n) {
  spikegrad::MultilevelParams<double> p;
  p.decay = decay;
  p.theta_p = theta_p;
  p.theta_n = theta_n;
  p.k_p = k_p;
  p.k_n = k_n;
  return p;
}

template <typename real>
spikegrad::MultilevelParams<real> multilevel_params(const py::array& x, const spikegrad::MultilevelParams<double>& s,
                                                    const py::array& a, const py::array& v_init) {
  spikegrad::MultilevelParams<real> params;
  params.T = static_cast<int64_t>(x.shape(0));
  params.N = static_cast<int64_t>(x.shape(1));
  params.decay = static_cast<real>(s.decay);
  params.theta_p = static_cast<real>(s.theta_p);
  params.theta_n = static_cast<real>(s.theta_n);
  params.k_p = s.k_p;
  params.k_n = s.k_n;
  params.a = static_cast<const real*>(a.data());
  params.v_init = static_cast<const real*>(v_init.data());
  return params;
}

void multilevel_forward(const py::object& x_obj, double decay, double theta_p, double theta_n, int k_p, int k_n,
                        const py::object& a_obj, const py::object& v_init_obj, const py::object& output_obj,
                        const py::object& membrane_obj, const py::object& v_last_obj, const std::string& surrogate,
                        bool smooth, int num_threads) {
  const spikegrad::MultilevelOptions options = spikegrad::parse_multilevel_options(surrogate, smooth, false);
  py::array x = as_array(x_obj, "x");
  const py::dtype dtype = dtype_of_x(x);
  if (x.ndim() != 2) throw py::value_error("x must be 2-D [T, N], got shape " + shape_string(x));
  const int64_t T = static_cast<int64_t>(x.shape(0)), N = static_cast<int64_t>(x.shape(1));
  x = checked(x, "x", dtype, {T, N}, false);
  py::array a = checked(a_obj, "a", dtype, {T}, false);
  py::array v_init = checked(v_init_obj, "v_init", dtype, {N}, false);
  py::array output = checked(output_obj, "output", dtype, {T, N}, true);
  py::array membrane;
  const bool has_membrane = !membrane_obj.is_none();
  if (has_membrane) membrane = checked(membrane_obj, "membrane", dtype, {T, N}, true);
  py::array v_last = checked(v_last_obj, "v_last", dtype, {N}, true);
  py::array* membrane_ptr = has_membrane ? &membrane : nullptr;
  check_no_overlap({{"x", &x, false},
                    {"a", &a, false},
                    {"v_init", &v_init, false},
                    {"output", &output, true},
                    {"membrane", membrane_ptr, true},
                    {"v_last", &v_last, true}});
  const auto scalars = multilevel_scalars(decay, theta_p, theta_n, k_p, k_n);
  auto run = [&](auto zero) {
    using real = decltype(zero);
    const auto params = multilevel_params<real>(x, scalars, a, v_init);
    const real* x_data = static_cast<const real*>(x.data());
    real* output_data = static_cast<real*>(output.mutable_data());
    real* membrane_data = mutable_data_or_null<real>(membrane_ptr);
    real* v_last_data = static_cast<real*>(v_last.mutable_data());
    py::gil_scoped_release release;
    spikegrad::multilevel_forward_cpu(options, params, x_data, output_data, membrane_data, v_last_data, num_threads);
  };
  if (dtype.equal(py::dtype::of<float>())) {
    run(0.0f);
  } else {
    run(0.0);
  }
}

py::tuple multilevel_backward(const py::object& x_obj, double decay, double theta_p, double theta_n, int k_p,
                              int k_n, const py::object& a_obj, const py::object& v_init_obj,
                              const py::object& grad_output_obj, const py::object& grad_membrane_obj,
                              const py::object& grad_v_last_obj, const py::object& grad_x_obj,
                              const py::object& grad_v_init_obj, const std::string& surrogate, bool smooth,
                              bool detach_reset, bool need_grad_decay, bool need_grad_a, int num_threads) {
  const spikegrad::MultilevelOptions options = spikegrad::parse_multilevel_options(surrogate, smooth, detach_reset);
  py::array x = as_array(x_obj, "x");
  const py::dtype dtype = dtype_of_x(x);
  if (x.ndim() != 2) throw py::value_error("x must be 2-D [T, N], got shape " + shape_string(x));
  const int64_t T = static_cast<int64_t>(x.shape(0)), N = static_cast<int64_t>(x.shape(1));
  x = checked(x, "x", dtype, {T, N}, false);
  py::array a = checked(a_obj, "a", dtype, {T}, false);
  py::array v_init = checked(v_init_obj, "v_init", dtype, {N}, false);
  py::array grad_output, grad_membrane, grad_v_last;
  const bool has_go = !grad_output_obj.is_none(), has_gm = !grad_membrane_obj.is_none(),
             has_gv = !grad_v_last_obj.is_none();
  if (has_go) grad_output = checked(grad_output_obj, "grad_output", dtype, {T, N}, false);
  if (has_gm) grad_membrane = checked(grad_membrane_obj, "grad_membrane", dtype, {T, N}, false);
  if (has_gv) grad_v_last = checked(grad_v_last_obj, "grad_v_last", dtype, {N}, false);
  py::array grad_x = checked(grad_x_obj, "grad_x", dtype, {T, N}, true);
  py::array grad_v_init = checked(grad_v_init_obj, "grad_v_init", dtype, {N}, true);
  const py::array* go_ptr = has_go ? &grad_output : nullptr;
  const py::array* gm_ptr = has_gm ? &grad_membrane : nullptr;
  const py::array* gv_ptr = has_gv ? &grad_v_last : nullptr;
  check_no_overlap({{"x", &x, false},
                    {"a", &a, false},
                    {"v_init", &v_init, false},
                    {"grad_output", go_ptr, false},
                    {"grad_membrane", gm_ptr, false},
                    {"grad_v_last", gv_ptr, false},
                    {"grad_x", &grad_x, true},
                    {"grad_v_init", &grad_v_init, true}});
  py::array_t<double> grad_a(static_cast<py::ssize_t>(T));
  double grad_decay = 0;
  std::vector<double> workspace(spikegrad::multilevel_backward_workspace_size(T, N));
  const auto scalars = multilevel_scalars(decay, theta_p, theta_n, k_p, k_n);
  auto run = [&](auto zero) {
    using real = decltype(zero);
    const auto params = multilevel_params<real>(x, scalars, a, v_init);
    const real* x_data = static_cast<const real*>(x.data());
    const real* go = data_or_null<real>(go_ptr);
    const real* gm = data_or_null<real>(gm_ptr);
    const real* gv = data_or_null<real>(gv_ptr);
    real* grad_x_data = static_cast<real*>(grad_x.mutable_data());
    real* grad_v_init_data = static_cast<real*>(grad_v_init.mutable_data());
    double* grad_a_data = grad_a.mutable_data();
    py::gil_scoped_release release;
    spikegrad::multilevel_backward_cpu(options, params, x_data, go, gm, gv, grad_x_data, grad_v_init_data,
                                       need_grad_decay ? &grad_decay : nullptr, need_grad_a ? grad_a_data : nullptr,
                                       workspace.data(), num_threads);
  };
  if (dtype.equal(py::dtype::of<float>())) {
    run(0.0f);
  } else {
    run(0.0);
  }
  return py::make_tuple(need_grad_decay ? py::object(py::float_(grad_decay)) : py::object(py::none()),
                        need_grad_a ? py::object(grad_a) : py::object(py::none()));
}

py::array_t<double> pnb_partial_sums(const py::object& h_obj, double theta_p, double theta_n, int k,
                                     int num_threads) {
  py::array h = as_array(h_obj, "h");
  if (h.dtype().equal(py::dtype::of<float>()) == false && h.dtype().equal(py::dtype::of<double>()) == false) {
    throw py::type_error("h must be float32 or float64, got " + py::str(h.dtype()).cast<std::string>());
  }
  if (!(h.flags() & py::array::c_style)) throw py::value_error("h must be C-contiguous");
  if (k < 1) throw py::value_error("k must be >= 1, got " + std::to_string(k));
  const int64_t count = static_cast<int64_t>(h.size());
  py::array_t<double> sums({static_cast<py::ssize_t>(k), static_cast<py::ssize_t>(2), static_cast<py::ssize_t>(2)});
  std::vector<double> workspace(spikegrad::pnb_workspace_size(count, k));
  double* sums_data = sums.mutable_data();
  auto run = [&](auto zero) {
    using real = decltype(zero);
    const real* h_data = static_cast<const real*>(h.data());
    py::gil_scoped_release release;
    spikegrad::pnb_partial_sums_cpu<real>(h_data, count, static_cast<real>(theta_p), static_cast<real>(theta_n), k,
                                          sums_data, workspace.data(), num_threads);
  };
  if (h.dtype().equal(py::dtype::of<float>())) {
    run(0.0f);
  } else {
    run(0.0);
  }
  return sums;
}

void pnb_partial_sums_backward(const py::object& h_obj, const py::object& grad_sums_obj, double theta_p,
                               double theta_n, int k, const py::object& grad_h_obj, int num_threads) {
  py::array h = as_array(h_obj, "h");
  const py::dtype dtype = h.dtype();
  if (!dtype.equal(py::dtype::of<float>()) && !dtype.equal(py::dtype::of<double>())) {
    throw py::type_error("h must be float32 or float64, got " + py::str(dtype).cast<std::string>());
  }
  if (!(h.flags() & py::array::c_style)) throw py::value_error("h must be C-contiguous");
  if (k < 1) throw py::value_error("k must be >= 1, got " + std::to_string(k));
  const int64_t count = static_cast<int64_t>(h.size());
  py::array grad_sums = checked(grad_sums_obj, "grad_sums", py::dtype::of<double>(), {k, 2, 2}, false);
  py::array grad_h = as_array(grad_h_obj, "grad_h");
  if (!grad_h.dtype().equal(dtype) || static_cast<int64_t>(grad_h.size()) != count ||
      !(grad_h.flags() & py::array::c_style) || !grad_h.writeable()) {
    throw py::value_error("grad_h must be a writeable C-contiguous array of h's dtype and size");
  }
  check_no_overlap({{"h", &h, false}, {"grad_sums", &grad_sums, false}, {"grad_h", &grad_h, true}});
  auto run = [&](auto zero) {
    using real = decltype(zero);
    const real* h_data = static_cast<const real*>(h.data());
    const double* g = static_cast<const double*>(grad_sums.data());
    real* out = static_cast<real*>(grad_h.mutable_data());
    py::gil_scoped_release release;
    spikegrad::pnb_partial_sums_backward_cpu<real>(h_data, count, static_cast<real>(theta_p),
                                                   static_cast<real>(theta_n), k, g, out, num_threads);
  };
  if (dtype.equal(py::dtype::of<float>())) {
    run(0.0f);
  } else {
    run(0.0);
  }
}

void register_multilevel(py::module_& m) {
  m.def("multilevel_forward", &multilevel_forward, py::arg("x"), py::arg("decay"), py::arg("theta_p"),
        py::arg("theta_n"), py::arg("k_p"), py::arg("k_n"), py::arg("a"), py::arg("v_init"), py::arg("output"),
        py::arg("membrane").none(true), py::arg("v_last"), py::kw_only(), py::arg("surrogate"), py::arg("smooth"),
        py::arg("num_threads") = 0,
        R"doc(Run the multi-level circulate-firing neuron over T steps (docs/spec.md §6), fused over T.

x: [T, N]. decay, theta_p, theta_n: floats (cast to the dtype of x); k_p, k_n: level counts.
a: [T], the surrogate height (span) or TSG parameter. v_init: [N].
Writes output: [T, N] (signed spike counts), membrane: [T, N] (h, pre-reset) unless None,
v_last: [N]. surrogate: 'span' | 'tsg' (used by the forward only when smooth).
Bit-identical to spikegrad.ref.multilevel.forward when not smooth.)doc");
  m.def("multilevel_backward", &multilevel_backward, py::arg("x"), py::arg("decay"), py::arg("theta_p"),
        py::arg("theta_n"), py::arg("k_p"), py::arg("k_n"), py::arg("a"), py::arg("v_init"),
        py::arg("grad_output").none(true), py::arg("grad_membrane").none(true), py::arg("grad_v_last").none(true),
        py::arg("grad_x"), py::arg("grad_v_init"), py::kw_only(), py::arg("surrogate"), py::arg("smooth"),
        py::arg("detach_reset"), py::arg("need_grad_decay") = true, py::arg("need_grad_a") = true,
        py::arg("num_threads") = 0,
        R"doc(BPTT backward of multilevel_forward (docs/spec.md §6, 8), recomputing the forward from x.

Writes grad_x: [T, N] and grad_v_init: [N]. Returns (grad_decay: float, grad_a: float64 [T]),
accumulated in float64 in a fixed order (the same bits for any num_threads); each is None
(and its float64 sums are skipped) when need_grad_decay / need_grad_a is False.)doc");
  m.def("pnb_partial_sums_backward", &pnb_partial_sums_backward, py::arg("h"), py::arg("grad_sums"),
        py::arg("theta_p"), py::arg("theta_n"), py::arg("k"), py::arg("grad_h"), py::kw_only(),
        py::arg("num_threads") = 0,
        R"doc(dL/dh of one layer's PNB partial sums from dL/d(sums) (float64 [k, 2, 2]).

Writes grad_h (h's dtype and size): per element, the terms of its region in float64 (w =
exp(-|c - h|), dw/dh = w sign(c - h), d(h w)/dh = w + h dw/dh), rounded once; as
spikegrad.ref.pnb.sums_backward. Elementwise: the same bits for any num_threads.)doc");
  m.def("pnb_partial_sums", &pnb_partial_sums, py::arg("h"), py::arg("theta_p"), py::arg("theta_n"), py::arg("k"),
        py::kw_only(), py::arg("num_threads") = 0,
        R"doc(The PNB loss's partial sums over one layer's membranes h (any shape, C-contiguous).

Returns float64 [k, 2, 2]: [level-1, sign (0: R+, 1: R-), (sum w, sum h w)] (docs/spec.md §6, the CF paper
Eqs. 18-21), accumulated in float64 in the fixed order of spikegrad.ref.pnb.)doc");
}

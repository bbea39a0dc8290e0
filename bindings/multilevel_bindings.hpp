// bindings/multilevel_bindings.hpp — the m.defs of the CF neuron and the PNB partial sums
// (cpp/include/spikegrad/{multilevel,pnb}_cpu.hpp). Included by core.cpp inside its anonymous
// namespace; its buffers are checked by bindings/buffers.hpp, in core.cpp's calling convention.

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
spikegrad::MultilevelParams<real> multilevel_params(int64_t T, int64_t N, const spikegrad::MultilevelParams<double>& s,
                                                    const Buffer& a, const Buffer& v_init) {
  spikegrad::MultilevelParams<real> params;
  params.T = T;
  params.N = N;
  params.decay = static_cast<real>(s.decay);
  params.theta_p = static_cast<real>(s.theta_p);
  params.theta_n = static_cast<real>(s.theta_n);
  params.k_p = s.k_p;
  params.k_n = s.k_n;
  params.a = a.as<const real>();
  params.v_init = v_init.as<const real>();
  return params;
}

void multilevel_forward(const py::object& decay_obj, double theta_p, double theta_n, int k_p, int k_n,
                        const py::object& a_obj, const py::object& v_init_obj, const py::object& x_obj,
                        const py::object& output_obj, const py::object& membrane_obj, const py::object& v_last_obj,
                        const std::string& surrogate, bool smooth, int num_threads) {
  const spikegrad::MultilevelOptions options = spikegrad::parse_multilevel_options(surrogate, smooth, false);
  const Buffer x = spikegrad::bindings::buffer(x_obj, "x", kHost);
  const DType dtype = require_time_major(x, false);
  const int64_t T = x.shape.dims[0], N = x.shape.dims[1];
  const auto decay = scalar_argument(decay_obj, "decay", kHost, dtype);
  const Buffer a = argument(a_obj, "a", kHost, dtype, {T}, kIn);
  const Buffer v_init = argument(v_init_obj, "v_init", kHost, dtype, {N}, kIn);
  const Buffer output = argument(output_obj, "output", kHost, dtype, {T, N}, kOut);
  const Buffer membrane = optional_argument(membrane_obj, "membrane", kHost, dtype, {T, N}, kOut);
  const Buffer v_last = argument(v_last_obj, "v_last", kHost, dtype, {N}, kOut);
  require_no_overlap({{&x, kIn}, {&a, kIn}, {&v_init, kIn}, {&output, kOut}, {&membrane, kOut}, {&v_last, kOut}});
  const auto scalars = multilevel_scalars(decay.value, theta_p, theta_n, k_p, k_n);
  with_real(dtype, [&](auto zero) {
    using real = decltype(zero);
    const auto params = multilevel_params<real>(T, N, scalars, a, v_init);
    py::gil_scoped_release release;
    spikegrad::multilevel_forward_cpu(options, params, x.as<const real>(), output.as<real>(),
                                      mutable_data_or_null<real>(membrane), v_last.as<real>(), num_threads);
  });
}

int64_t multilevel_backward_workspace_bytes(const py::object& x_obj) {
  const Buffer x = spikegrad::bindings::buffer(x_obj, "x", kHost);
  require_time_major(x, false);
  return bytes_of_doubles(spikegrad::multilevel_backward_workspace_size(x.shape.dims[0], x.shape.dims[1]));
}

void multilevel_backward(const py::object& decay_obj, double theta_p, double theta_n, int k_p, int k_n,
                         const py::object& a_obj, const py::object& v_init_obj, const py::object& x_obj,
                         const py::object& grad_output_obj, const py::object& grad_membrane_obj,
                         const py::object& grad_v_last_obj, const py::object& grad_x_obj,
                         const py::object& grad_v_init_obj, const py::object& grad_decay_obj,
                         const py::object& grad_a_obj, const py::object& workspace_obj, const std::string& surrogate,
                         bool smooth, bool detach_reset, int num_threads) {
  const spikegrad::MultilevelOptions options = spikegrad::parse_multilevel_options(surrogate, smooth, detach_reset);
  const Buffer x = spikegrad::bindings::buffer(x_obj, "x", kHost);
  const DType dtype = require_time_major(x, false);
  const int64_t T = x.shape.dims[0], N = x.shape.dims[1];
  const auto decay = scalar_argument(decay_obj, "decay", kHost, dtype);
  const Buffer a = argument(a_obj, "a", kHost, dtype, {T}, kIn);
  const Buffer v_init = argument(v_init_obj, "v_init", kHost, dtype, {N}, kIn);
  const Buffer grad_output = optional_argument(grad_output_obj, "grad_output", kHost, dtype, {T, N}, kIn);
  const Buffer grad_membrane = optional_argument(grad_membrane_obj, "grad_membrane", kHost, dtype, {T, N}, kIn);
  const Buffer grad_v_last = optional_argument(grad_v_last_obj, "grad_v_last", kHost, dtype, {N}, kIn);
  const Buffer grad_x = argument(grad_x_obj, "grad_x", kHost, dtype, {T, N}, kOut);
  const Buffer grad_v_init = argument(grad_v_init_obj, "grad_v_init", kHost, dtype, {N}, kOut);
  // float64 sums, each None when not wanted (its sums are then skipped)
  const char* f64 = "float64 sums";
  const Buffer grad_decay = optional_argument(grad_decay_obj, "grad_decay", kHost, DType::Float64, Shape::scalar(), kOut, f64);
  const Buffer grad_a = optional_argument(grad_a_obj, "grad_a", kHost, DType::Float64, {T}, kOut, f64);
  const Buffer workspace = workspace_argument(workspace_obj, "workspace", kHost,
                                              bytes_of_doubles(spikegrad::multilevel_backward_workspace_size(T, N)));
  require_no_overlap({{&x, kIn}, {&a, kIn}, {&v_init, kIn}, {&grad_output, kIn}, {&grad_membrane, kIn},
                      {&grad_v_last, kIn}, {&grad_x, kOut}, {&grad_v_init, kOut}, {&grad_decay, kOut},
                      {&grad_a, kOut}, {&workspace, kOut}});
  const auto scalars = multilevel_scalars(decay.value, theta_p, theta_n, k_p, k_n);
  with_real(dtype, [&](auto zero) {
    using real = decltype(zero);
    const auto params = multilevel_params<real>(T, N, scalars, a, v_init);
    py::gil_scoped_release release;
    spikegrad::multilevel_backward_cpu(options, params, x.as<const real>(), data_or_null<real>(grad_output),
                                       data_or_null<real>(grad_membrane), data_or_null<real>(grad_v_last),
                                       grad_x.as<real>(), grad_v_init.as<real>(), mutable_data_or_null<double>(grad_decay),
                                       mutable_data_or_null<double>(grad_a), workspace.as<double>(), num_threads);
  });
}

// h: any shape, flattened (one layer's membranes).
DType require_pnb_h(const Buffer& h) {
  if (!h.present) spikegrad::bindings::type_error("h must not be None");
  const DType dtype = spikegrad::bindings::require_data_dtype(h, false);
  spikegrad::bindings::require(h, dtype, Shape::any(), kIn);
  return dtype;
}

int64_t pnb_workspace_bytes(const py::object& h_obj, int k) {
  const Buffer h = spikegrad::bindings::buffer(h_obj, "h", kHost);
  require_pnb_h(h);
  return bytes_of_doubles(spikegrad::pnb_workspace_size(h.shape.numel(), k));
}

void pnb_partial_sums(const py::object& h_obj, double theta_p, double theta_n, int k, const py::object& sums_obj,
                      const py::object& workspace_obj, int num_threads) {
  const Buffer h = spikegrad::bindings::buffer(h_obj, "h", kHost);
  const DType dtype = require_pnb_h(h);
  if (k < 1) spikegrad::bindings::value_error("k must be >= 1, got " + std::to_string(k));
  const int64_t count = h.shape.numel();
  const Buffer sums = argument(sums_obj, "sums", kHost, DType::Float64, {k, 2, 2}, kOut, "float64 sums");
  const Buffer workspace =
      workspace_argument(workspace_obj, "workspace", kHost, bytes_of_doubles(spikegrad::pnb_workspace_size(count, k)));
  require_no_overlap({{&h, kIn}, {&sums, kOut}, {&workspace, kOut}});
  with_real(dtype, [&](auto zero) {
    using real = decltype(zero);
    py::gil_scoped_release release;
    spikegrad::pnb_partial_sums_cpu<real>(h.as<const real>(), count, static_cast<real>(theta_p),
                                          static_cast<real>(theta_n), k, sums.as<double>(), workspace.as<double>(),
                                          num_threads);
  });
}

void pnb_partial_sums_backward(const py::object& h_obj, double theta_p, double theta_n, int k,
                               const py::object& grad_sums_obj, const py::object& grad_h_obj, int num_threads) {
  const Buffer h = spikegrad::bindings::buffer(h_obj, "h", kHost);
  const DType dtype = require_pnb_h(h);
  if (k < 1) spikegrad::bindings::value_error("k must be >= 1, got " + std::to_string(k));
  const Buffer grad_sums = argument(grad_sums_obj, "grad_sums", kHost, DType::Float64, {k, 2, 2}, kIn, "float64 sums");
  const Buffer grad_h = argument(grad_h_obj, "grad_h", kHost, dtype, h.shape, kOut, "the dtype of h");
  require_no_overlap({{&h, kIn}, {&grad_sums, kIn}, {&grad_h, kOut}});
  const int64_t count = h.shape.numel();
  with_real(dtype, [&](auto zero) {
    using real = decltype(zero);
    py::gil_scoped_release release;
    spikegrad::pnb_partial_sums_backward_cpu<real>(h.as<const real>(), count, static_cast<real>(theta_p),
                                                   static_cast<real>(theta_n), k, grad_sums.as<const double>(),
                                                   grad_h.as<real>(), num_threads);
  });
}

void register_multilevel(py::module_& m) {
  m.def("multilevel_forward", &multilevel_forward, py::arg("decay"), py::arg("theta_p"), py::arg("theta_n"),
        py::arg("k_p"), py::arg("k_n"), py::arg("a"), py::arg("v_init"), py::arg("x"), py::arg("output"),
        py::arg("membrane").none(true), py::arg("v_last"), py::kw_only(), py::arg("surrogate"), py::arg("smooth"),
        py::arg("num_threads") = 0,
        R"doc(Run the multi-level circulate-firing neuron over T steps (docs/spec.md §6), fused over T.

decay (a float or a 0-d buffer), theta_p, theta_n: cast to the dtype of x; k_p, k_n: level
counts. a: [T], the surrogate height (span) or TSG parameter. v_init: [N]. x: [T, N].
Writes output: [T, N] (signed spike counts), membrane: [T, N] (h, pre-reset) unless None,
v_last: [N]. surrogate: 'span' | 'tsg' (used by the forward only when smooth).
Bit-identical to spikegrad.ref.multilevel.forward when not smooth.)doc");
  m.def("multilevel_backward_workspace_bytes", &multilevel_backward_workspace_bytes, py::arg("x"),
        "Bytes of the workspace of multilevel_backward for x [T, N].");
  m.def("multilevel_backward", &multilevel_backward, py::arg("decay"), py::arg("theta_p"), py::arg("theta_n"),
        py::arg("k_p"), py::arg("k_n"), py::arg("a"), py::arg("v_init"), py::arg("x"),
        py::arg("grad_output").none(true), py::arg("grad_membrane").none(true), py::arg("grad_v_last").none(true),
        py::arg("grad_x"), py::arg("grad_v_init"), py::arg("grad_decay").none(true), py::arg("grad_a").none(true),
        py::arg("workspace"), py::kw_only(), py::arg("surrogate"), py::arg("smooth"), py::arg("detach_reset"),
        py::arg("num_threads") = 0,
        R"doc(BPTT backward of multilevel_forward (docs/spec.md §6, 8), recomputing the forward from x.

Writes grad_x: [T, N], grad_v_init: [N], grad_decay: float64 0-d and grad_a: float64 [T],
accumulated in float64 in a fixed order (the same bits for any num_threads); grad_decay or
grad_a None skips that gradient's float64 sums. workspace: uint8,
multilevel_backward_workspace_bytes(x) bytes.)doc");
  m.def("pnb_partial_sums_backward", &pnb_partial_sums_backward, py::arg("h"), py::arg("theta_p"),
        py::arg("theta_n"), py::arg("k"), py::arg("grad_sums"), py::arg("grad_h"), py::kw_only(),
        py::arg("num_threads") = 0,
        R"doc(dL/dh of one layer's PNB partial sums from dL/d(sums) (float64 [k, 2, 2]).

Writes grad_h (h's dtype and shape): per element, the terms of its region in float64 (w =
exp(-|c - h|), dw/dh = w sign(c - h), d(h w)/dh = w + h dw/dh), rounded once; as
spikegrad.ref.pnb.sums_backward. Elementwise: the same bits for any num_threads.)doc");
  m.def("pnb_workspace_bytes", &pnb_workspace_bytes, py::arg("h"), py::arg("k"),
        "Bytes of the workspace of pnb_partial_sums for h (any shape) and k levels.");
  m.def("pnb_partial_sums", &pnb_partial_sums, py::arg("h"), py::arg("theta_p"), py::arg("theta_n"), py::arg("k"),
        py::arg("sums"), py::arg("workspace"), py::kw_only(), py::arg("num_threads") = 0,
        R"doc(The PNB loss's partial sums over one layer's membranes h (any shape, C-contiguous).

Writes sums, float64 [k, 2, 2]: [level-1, sign (0: R+, 1: R-), (sum w, sum h w)] (docs/spec.md §6,
the CF paper Eqs. 18-21), accumulated in float64 in the fixed order of spikegrad.ref.pnb.
workspace: uint8, pnb_workspace_bytes(h, k) bytes.)doc");
}

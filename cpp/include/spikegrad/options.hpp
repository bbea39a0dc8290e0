// spikegrad/options.hpp — the neuron's option enums (docs/spec.md §1, 3, 4, 5), their string names, and
// the one place where run-time options become the template parameters of the kernels.
// Test: cpp/tests/test_formulas.cpp ("invalid options throw").
#pragma once

#include <cstddef>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace spikegrad {

// ---------------------------------------------------------------------------------------------
// The options. Strings at the Python surface, these enums in C++, template parameters in kernels.
// ---------------------------------------------------------------------------------------------

// Each option's choices are listed once, X(enum value, Python name), and everything per choice is
// generated from the list: the enum, the name table (the strings of pyref/formulas.py: CHARGES,
// RESETS, ...), the parser and the dispatch to template parameters. A surrogate is added by its
// formulas (formulas.hpp, pyref/formulas.py) and one line in SPIKEGRAD_SURROGATES.
#define SPIKEGRAD_CHARGES(X) \
  X(Mul, "mul")              \
  X(DecayInput, "decay_input") \
  X(NoDecayInput, "no_decay_input") \
  X(IF, "if")
#define SPIKEGRAD_RESETS(X) \
  X(Hard, "hard")           \
  X(Soft, "soft")           \
  X(None, "none")
#define SPIKEGRAD_SCALES(X) \
  X(Absolute, "absolute")   \
  X(Relative, "relative")   \
  X(ThresholdRobust, "threshold_robust")
#define SPIKEGRAD_SURROGATES(X) \
  X(Rect, "rect")               \
  X(Triangle, "triangle")       \
  X(Sigmoid, "sigmoid")         \
  X(Atan, "atan")

#define SPIKEGRAD_ENUM_VALUE(value, name) value,
enum class Charge { SPIKEGRAD_CHARGES(SPIKEGRAD_ENUM_VALUE) };        // docs/spec.md §1: how h[t] is charged
enum class Reset { SPIKEGRAD_RESETS(SPIKEGRAD_ENUM_VALUE) };          // docs/spec.md §4: how v[t] is made from h[t]
enum class Scale { SPIKEGRAD_SCALES(SPIKEGRAD_ENUM_VALUE) };          // docs/spec.md §3: z and the output o
enum class Surrogate { SPIKEGRAD_SURROGATES(SPIKEGRAD_ENUM_VALUE) };  // docs/spec.md §5: f'(z; p) and F(z; p)
#undef SPIKEGRAD_ENUM_VALUE

struct NeuronOptions {
  Charge charge = Charge::Mul;
  Reset reset = Reset::Hard;
  Scale scale = Scale::Absolute;
  Surrogate surrogate = Surrogate::Rect;
  bool smooth = false;        // forward uses s = F(z) instead of H(z) (docs/spec.md §5, smooth mode)
  bool detach_reset = false;  // backward only: the s inside the reset is a constant (docs/spec.md §4)
};

// ---------------------------------------------------------------------------------------------
// Names. The tables spell the same strings as pyref/formulas.py (CHARGES, RESETS, ...).
// ---------------------------------------------------------------------------------------------

namespace detail {

// A number in an error message: 9 significant digits, as pyref prints it.
inline std::string number_string(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.9g", value);
  return buffer;
}

template <typename E>
struct OptionName {
  std::string_view name;
  E value;
};

#define SPIKEGRAD_OPTION_NAME(E, value, name) {name, E::value},
#define SPIKEGRAD_CHARGE_NAME(value, name) SPIKEGRAD_OPTION_NAME(Charge, value, name)
#define SPIKEGRAD_RESET_NAME(value, name) SPIKEGRAD_OPTION_NAME(Reset, value, name)
#define SPIKEGRAD_SCALE_NAME(value, name) SPIKEGRAD_OPTION_NAME(Scale, value, name)
#define SPIKEGRAD_SURROGATE_NAME(value, name) SPIKEGRAD_OPTION_NAME(Surrogate, value, name)
inline constexpr OptionName<Charge> kCharges[] = {SPIKEGRAD_CHARGES(SPIKEGRAD_CHARGE_NAME)};
inline constexpr OptionName<Reset> kResets[] = {SPIKEGRAD_RESETS(SPIKEGRAD_RESET_NAME)};
inline constexpr OptionName<Scale> kScales[] = {SPIKEGRAD_SCALES(SPIKEGRAD_SCALE_NAME)};
inline constexpr OptionName<Surrogate> kSurrogates[] = {SPIKEGRAD_SURROGATES(SPIKEGRAD_SURROGATE_NAME)};
#undef SPIKEGRAD_CHARGE_NAME
#undef SPIKEGRAD_RESET_NAME
#undef SPIKEGRAD_SCALE_NAME
#undef SPIKEGRAD_SURROGATE_NAME
#undef SPIKEGRAD_OPTION_NAME

// "charge must be one of 'mul', 'decay_input', 'no_decay_input', 'if'; got 'foo'"
// (the message of bindings/spikegrad/_options.py).
template <typename E, std::size_t K>
E parse_option(const char* option, std::string_view value, const OptionName<E> (&table)[K]) {
  for (const auto& entry : table) {
    if (entry.name == value) return entry.value;
  }
  std::string message = std::string(option) + " must be one of ";
  for (std::size_t k = 0; k < K; ++k) {
    if (k > 0) message += ", ";
    message += "'" + std::string(table[k].name) + "'";
  }
  message += "; got '" + std::string(value) + "'";
  throw std::invalid_argument(message);
}

template <typename E, std::size_t K>
const char* option_name(E value, const OptionName<E> (&table)[K]) {
  for (const auto& entry : table) {
    if (entry.value == value) return entry.name.data();
  }
  return "?";
}

}  // namespace detail

inline Charge parse_charge(std::string_view s) { return detail::parse_option("charge", s, detail::kCharges); }
inline Reset parse_reset(std::string_view s) { return detail::parse_option("reset", s, detail::kResets); }
inline Scale parse_scale(std::string_view s) { return detail::parse_option("scale", s, detail::kScales); }
inline Surrogate parse_surrogate(std::string_view s) {
  return detail::parse_option("surrogate", s, detail::kSurrogates);
}

// All options from their names (the strings of the Python API); std::invalid_argument names
// the option that is not one of its choices.
inline NeuronOptions parse_neuron_options(std::string_view charge, std::string_view reset, std::string_view scale,
                                          std::string_view surrogate, bool smooth, bool detach_reset) {
  NeuronOptions options;
  options.charge = parse_charge(charge);
  options.reset = parse_reset(reset);
  options.scale = parse_scale(scale);
  options.surrogate = parse_surrogate(surrogate);
  options.smooth = smooth;
  options.detach_reset = detach_reset;
  return options;
}

inline const char* to_string(Charge c) { return detail::option_name(c, detail::kCharges); }
inline const char* to_string(Reset r) { return detail::option_name(r, detail::kResets); }
inline const char* to_string(Scale s) { return detail::option_name(s, detail::kScales); }
inline const char* to_string(Surrogate g) { return detail::option_name(g, detail::kSurrogates); }

// ---------------------------------------------------------------------------------------------
// Dispatch: run-time options -> template parameters, in this one place (in the spirit of
// flash-attention's static_switch.h).
//
//   dispatch_neuron_but_surrogate(options, [&](auto charge, auto reset, auto scale, auto smooth) {
//     kernel<decltype(charge)::value, decltype(reset)::value, ...>(..., options.surrogate);
//   });
//
// calls the functor with one std::integral_constant per option, so each combination of
// (charge, reset, scale, smooth) is its own compiled kernel: 4 x 3 x 3 x 2 = 72 per dtype.
// The surrogate is not among them: it enters the kernels as a run-time value, chosen once per
// row of neurons (neuron_cpu.hpp) or per element with a warp-uniform switch (cpp/cuda/), so the
// number of kernels does not grow with the list of surrogates. detach_reset is not dispatched
// here either: it changes one term of the backward's inner loop, so the backward kernel picks
// between two instantiations of that loop only (neuron_cpu.hpp, backward_steps).
// ---------------------------------------------------------------------------------------------

template <Charge C> using ChargeConstant = std::integral_constant<Charge, C>;
template <Reset R> using ResetConstant = std::integral_constant<Reset, R>;
template <Scale S> using ScaleConstant = std::integral_constant<Scale, S>;
template <Surrogate G> using SurrogateConstant = std::integral_constant<Surrogate, G>;
template <bool B> using BoolConstant = std::integral_constant<bool, B>;

// One `case` per choice of a list: f(std::integral_constant<E, E::value>{}).
#define SPIKEGRAD_DISPATCH_CASE(E, value) \
  case E::value: f(std::integral_constant<E, E::value>{}); return;
#define SPIKEGRAD_CHARGE_CASE(value, name) SPIKEGRAD_DISPATCH_CASE(Charge, value)
#define SPIKEGRAD_RESET_CASE(value, name) SPIKEGRAD_DISPATCH_CASE(Reset, value)
#define SPIKEGRAD_SCALE_CASE(value, name) SPIKEGRAD_DISPATCH_CASE(Scale, value)
#define SPIKEGRAD_SURROGATE_CASE(value, name) SPIKEGRAD_DISPATCH_CASE(Surrogate, value)

template <typename F>
void dispatch_charge(Charge c, F&& f) {
  switch (c) { SPIKEGRAD_CHARGES(SPIKEGRAD_CHARGE_CASE) }
  throw std::invalid_argument("charge: invalid enum value");
}

template <typename F>
void dispatch_reset(Reset r, F&& f) {
  switch (r) { SPIKEGRAD_RESETS(SPIKEGRAD_RESET_CASE) }
  throw std::invalid_argument("reset: invalid enum value");
}

template <typename F>
void dispatch_scale(Scale s, F&& f) {
  switch (s) { SPIKEGRAD_SCALES(SPIKEGRAD_SCALE_CASE) }
  throw std::invalid_argument("scale: invalid enum value");
}

// Kernels take the surrogate as a run-time value (neuron_element.hpp): this dispatch serves the
// small per-surrogate row functions only (neuron_cpu.hpp, surrogate_rows).
template <typename F>
void dispatch_surrogate(Surrogate g, F&& f) {
  switch (g) { SPIKEGRAD_SURROGATES(SPIKEGRAD_SURROGATE_CASE) }
  throw std::invalid_argument("surrogate: invalid enum value");
}

#undef SPIKEGRAD_CHARGE_CASE
#undef SPIKEGRAD_RESET_CASE
#undef SPIKEGRAD_SCALE_CASE
#undef SPIKEGRAD_SURROGATE_CASE
#undef SPIKEGRAD_DISPATCH_CASE

template <typename F>
void dispatch_bool(bool b, F&& f) {
  if (b) {
    f(BoolConstant<true>{});
  } else {
    f(BoolConstant<false>{});
  }
}

// f(charge, reset, scale, smooth), each an integral_constant: the neuron kernels' dispatch (the
// surrogate is their run-time argument).
template <typename F>
void dispatch_neuron_but_surrogate(const NeuronOptions& options, F&& f) {
  dispatch_charge(options.charge, [&](auto charge) {
    dispatch_reset(options.reset, [&](auto reset) {
      dispatch_scale(options.scale, [&](auto scale) {
        dispatch_bool(options.smooth, [&](auto smooth) { f(charge, reset, scale, smooth); });
      });
    });
  });
}

// Every option as a template parameter: f(charge, reset, scale, surrogate, smooth), each an
// integral_constant (for code of one's own that wants the surrogate fixed at compile time).
template <typename F>
void dispatch_neuron(const NeuronOptions& options, F&& f) {
  dispatch_surrogate(options.surrogate, [&](auto surrogate) {
    dispatch_neuron_but_surrogate(options, [&](auto charge, auto reset, auto scale, auto smooth) {
      f(charge, reset, scale, surrogate, smooth);
    });
  });
}


// ---------------------------------------------------------------------------------------------
// The multi-level (CF, docs/spec.md §6) and adaptive-threshold (DS-ATGO, docs/spec.md §2 "AT",
// §5 "TGO") options: enums, names, parsers and dispatch, in the neuron section's style. The PNB
// partial sums have no option.
// ---------------------------------------------------------------------------------------------

// The level surrogate (docs/spec.md §6): Eq. 14's rectangle union ("span") or the TSG triangles ("tsg").
enum class LevelSurrogate { Span, Tsg };
enum class ThresholdMode { True, Estimated };  // Eq. 5 of DS-ATGO: second line / first line
enum class TgoDriver { Std, Threshold };       // d_t of Eq. 7: std(h[t]) (released code) / theta[t] (paper)

struct MultilevelOptions {
  LevelSurrogate surrogate = LevelSurrogate::Tsg;
  bool smooth = false;        // counts are the primitives of the level surrogates (pyref/multilevel.py)
  bool detach_reset = false;  // backward only: the counts inside the reset are constants
};

namespace detail {

// The same strings as pyref/multilevel.py and pyref/adaptive.py.
inline constexpr OptionName<LevelSurrogate> kLevelSurrogates[] = {{"span", LevelSurrogate::Span},
                                                                  {"tsg", LevelSurrogate::Tsg}};
inline constexpr OptionName<ThresholdMode> kThresholdModes[] = {{"true", ThresholdMode::True},
                                                                {"estimated", ThresholdMode::Estimated}};
inline constexpr OptionName<TgoDriver> kTgoDrivers[] = {{"std", TgoDriver::Std}, {"threshold", TgoDriver::Threshold}};

}  // namespace detail

// The multi-level neuron's surrogate is the Python argument `surrogate`, as the neuron's.
inline LevelSurrogate parse_level_surrogate(std::string_view s) {
  return detail::parse_option("surrogate", s, detail::kLevelSurrogates);
}
inline ThresholdMode parse_threshold_mode(std::string_view s) {
  return detail::parse_option("threshold_mode", s, detail::kThresholdModes);
}
inline TgoDriver parse_tgo_driver(std::string_view s) { return detail::parse_option("tgo_driver", s, detail::kTgoDrivers); }

inline MultilevelOptions parse_multilevel_options(std::string_view surrogate, bool smooth, bool detach_reset) {
  MultilevelOptions options;
  options.surrogate = parse_level_surrogate(surrogate);
  options.smooth = smooth;
  options.detach_reset = detach_reset;
  return options;
}

inline const char* to_string(LevelSurrogate g) { return detail::option_name(g, detail::kLevelSurrogates); }
inline const char* to_string(ThresholdMode m) { return detail::option_name(m, detail::kThresholdModes); }
inline const char* to_string(TgoDriver d) { return detail::option_name(d, detail::kTgoDrivers); }

template <LevelSurrogate G> using LevelSurrogateConstant = std::integral_constant<LevelSurrogate, G>;

template <typename F>
void dispatch_level_surrogate(LevelSurrogate g, F&& f) {
  switch (g) {
    case LevelSurrogate::Span: f(LevelSurrogateConstant<LevelSurrogate::Span>{}); return;
    case LevelSurrogate::Tsg: f(LevelSurrogateConstant<LevelSurrogate::Tsg>{}); return;
  }
  throw std::invalid_argument("surrogate: invalid enum value");
}

// The multi-level neuron's dispatch: f(surrogate, smooth), each an integral_constant (2 x 2
// kernels). detach_reset is a run-time argument of the backward step, as for the neuron.
template <typename F>
void dispatch_multilevel(const MultilevelOptions& options, F&& f) {
  dispatch_level_surrogate(options.surrogate, [&](auto surrogate) {
    dispatch_bool(options.smooth, [&](auto smooth) { f(surrogate, smooth); });
  });
}

// The multi-level forward's dispatch: outside smooth mode the forward never looks at the
// surrogate, so both surrogates share the span variant (3 forward kernels instead of 4).
template <typename F>
void dispatch_multilevel_forward(const MultilevelOptions& options, F&& f) {
  dispatch_multilevel(options, [&](auto surrogate, auto smooth) {
    if constexpr (decltype(smooth)::value) {
      f(surrogate, smooth);
    } else {
      f(LevelSurrogateConstant<LevelSurrogate::Span>{}, smooth);
    }
  });
}

}  // namespace spikegrad

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

enum class Charge { Mul, DecayInput, NoDecayInput, IF };    // docs/spec.md §1: how h[t] is charged
enum class Reset { Hard, Soft, None };                      // docs/spec.md §4: how v[t] is made from h[t]
enum class Scale { Absolute, Relative, ThresholdRobust };   // docs/spec.md §3: z and the output o
enum class Surrogate { Rect, Triangle, Sigmoid, Atan };     // docs/spec.md §5: f'(z; p) and F(z; p)

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

inline constexpr OptionName<Charge> kCharges[] = {
    {"mul", Charge::Mul},
    {"decay_input", Charge::DecayInput},
    {"no_decay_input", Charge::NoDecayInput},
    {"if", Charge::IF}};
inline constexpr OptionName<Reset> kResets[] = {
    {"hard", Reset::Hard}, {"soft", Reset::Soft}, {"none", Reset::None}};
inline constexpr OptionName<Scale> kScales[] = {
    {"absolute", Scale::Absolute},
    {"relative", Scale::Relative},
    {"threshold_robust", Scale::ThresholdRobust}};
inline constexpr OptionName<Surrogate> kSurrogates[] = {
    {"rect", Surrogate::Rect},
    {"triangle", Surrogate::Triangle},
    {"sigmoid", Surrogate::Sigmoid},
    {"atan", Surrogate::Atan}};

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
//   dispatch_neuron(options, [&](auto charge, auto reset, auto scale, auto surrogate, auto smooth) {
//     kernel<decltype(charge)::value, decltype(reset)::value, ...>(...);
//   });
//
// calls the functor with one std::integral_constant per option, so each combination of
// (charge, reset, scale, surrogate, smooth) is its own compiled kernel: 4 x 3 x 3 x 4 x 2 = 288.
// detach_reset is not dispatched here: it changes one term of the backward's inner loop, so the
// backward kernel picks between two instantiations of that loop only (neuron_cpu.hpp,
// backward_steps), instead of doubling every backward kernel and the build time.
// ---------------------------------------------------------------------------------------------

template <Charge C> using ChargeConstant = std::integral_constant<Charge, C>;
template <Reset R> using ResetConstant = std::integral_constant<Reset, R>;
template <Scale S> using ScaleConstant = std::integral_constant<Scale, S>;
template <Surrogate G> using SurrogateConstant = std::integral_constant<Surrogate, G>;
template <bool B> using BoolConstant = std::integral_constant<bool, B>;

template <typename F>
void dispatch_charge(Charge c, F&& f) {
  switch (c) {
    case Charge::Mul: f(ChargeConstant<Charge::Mul>{}); return;
    case Charge::DecayInput: f(ChargeConstant<Charge::DecayInput>{}); return;
    case Charge::NoDecayInput: f(ChargeConstant<Charge::NoDecayInput>{}); return;
    case Charge::IF: f(ChargeConstant<Charge::IF>{}); return;
  }
  throw std::invalid_argument("charge: invalid enum value");
}

template <typename F>
void dispatch_reset(Reset r, F&& f) {
  switch (r) {
    case Reset::Hard: f(ResetConstant<Reset::Hard>{}); return;
    case Reset::Soft: f(ResetConstant<Reset::Soft>{}); return;
    case Reset::None: f(ResetConstant<Reset::None>{}); return;
  }
  throw std::invalid_argument("reset: invalid enum value");
}

template <typename F>
void dispatch_scale(Scale s, F&& f) {
  switch (s) {
    case Scale::Absolute: f(ScaleConstant<Scale::Absolute>{}); return;
    case Scale::Relative: f(ScaleConstant<Scale::Relative>{}); return;
    case Scale::ThresholdRobust: f(ScaleConstant<Scale::ThresholdRobust>{}); return;
  }
  throw std::invalid_argument("scale: invalid enum value");
}

template <typename F>
void dispatch_surrogate(Surrogate g, F&& f) {
  switch (g) {
    case Surrogate::Rect: f(SurrogateConstant<Surrogate::Rect>{}); return;
    case Surrogate::Triangle: f(SurrogateConstant<Surrogate::Triangle>{}); return;
    case Surrogate::Sigmoid: f(SurrogateConstant<Surrogate::Sigmoid>{}); return;
    case Surrogate::Atan: f(SurrogateConstant<Surrogate::Atan>{}); return;
  }
  throw std::invalid_argument("surrogate: invalid enum value");
}

template <typename F>
void dispatch_bool(bool b, F&& f) {
  if (b) {
    f(BoolConstant<true>{});
  } else {
    f(BoolConstant<false>{});
  }
}

// f(charge, reset, scale, smooth), each an integral_constant: the neuron's dispatch for code
// whose surrogate is a template parameter already (the backward kernels are compiled one
// surrogate per translation unit, neuron_cpu.hpp and cpp/cuda/).
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

// The neuron's dispatch: f(charge, reset, scale, surrogate, smooth), each an integral_constant.
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

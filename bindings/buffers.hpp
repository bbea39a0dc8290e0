// bindings/buffers.hpp — the buffers of spikegrad._core and spikegrad._cuda: one view (Buffer) of
// a NumPy array or a torch tensor, and one set of checks (require, require_no_overlap).
//
// A torch tensor is read by duck typing, through Python attribute calls (data_ptr(), dtype,
// shape, is_contiguous(), device.type, device.index): neither module links PyTorch.
// (torch's __cuda_array_interface__ has no bfloat16, which the CUDA ops use.)
//
// Where a module's buffers live (Placement): _core takes NumPy arrays and CPU tensors, _cuda
// CUDA tensors, all on x's device. Errors: TypeError for a wrong type or dtype, ValueError for a
// wrong device, shape, order, writeability, alignment or an overlap; every message names the
// argument. Test: tests/ops/test_buffers.py.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace spikegrad::bindings {

namespace py = pybind11;

enum class DType { Float32, Float64, Float16, BFloat16, UInt8, Other };

inline const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
    case DType::UInt8: return "uint8";
    default: return "another dtype";
  }
}

inline int64_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::Float64: return 8;
    case DType::Float32: return 4;
    case DType::Float16:
    case DType::BFloat16: return 2;
    default: return 1;
  }
}

// The dtype of the state (parameters, v_init and their gradients) for x of `dtype`: float16
// and bfloat16 are storage formats of x only (docs/cuda.md).
inline DType state_dtype(DType dtype) {
  return dtype == DType::Float16 || dtype == DType::BFloat16 ? DType::Float32 : dtype;
}

// Where a module's buffers must live.
enum class Placement { Host, Cuda };

// A shape to check against: fixed extents, or any (ndim < 0).
struct Shape {
  static constexpr int kMaxDims = 8;
  int ndim = -1;
  std::array<int64_t, kMaxDims> dims{};

  Shape() = default;
  Shape(std::initializer_list<int64_t> extents) : ndim(static_cast<int>(extents.size())) {
    int d = 0;
    for (int64_t extent : extents) dims[static_cast<std::size_t>(d++)] = extent;
  }
  static Shape any() { return Shape(); }
  static Shape scalar() { return Shape(std::initializer_list<int64_t>{}); }

  bool operator==(const Shape& other) const {
    if (ndim != other.ndim) return false;
    for (int d = 0; d < ndim; ++d) {
      if (dims[static_cast<std::size_t>(d)] != other.dims[static_cast<std::size_t>(d)]) return false;
    }
    return true;
  }

  int64_t numel() const {
    int64_t n = 1;
    for (int d = 0; d < ndim; ++d) n *= dims[static_cast<std::size_t>(d)];
    return n;
  }

  // NumPy's spelling: (3,), (2, 3)
  std::string str() const {
    std::string s = "(";
    for (int d = 0; d < ndim; ++d) {
      s += std::to_string(dims[static_cast<std::size_t>(d)]);
      if (ndim == 1) s += ",";
      if (d + 1 < ndim) s += ", ";
    }
    return s + ")";
  }
};

// A view of one buffer argument: where its data is and what it holds. Absent (None) buffers
// have present == false and data == nullptr.
struct Buffer {
  const char* name = "";
  bool present = false;
  bool is_tensor = false;    // a torch tensor (else a NumPy array)
  void* data = nullptr;
  DType dtype = DType::Other;
  std::string other_dtype;   // the dtype's own name when it is none of DType's
  Shape shape;
  bool contiguous = false;   // C order
  bool writeable = false;
  int device_index = -1;     // CUDA tensors: the device's index

  int64_t nbytes() const { return shape.numel() * dtype_size(dtype); }

  std::string dtype_str() const { return dtype == DType::Other ? other_dtype : dtype_name(dtype); }

  template <typename T>
  T* as() const {
    return static_cast<T*>(data);
  }
};

[[noreturn]] inline void type_error(const std::string& message) { throw py::type_error(message); }
[[noreturn]] inline void value_error(const std::string& message) { throw py::value_error(message); }

namespace detail {

inline std::string type_name(py::handle obj) {
  return py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>();
}

inline DType numpy_dtype(const py::array& a) {
  switch (a.dtype().num()) {
    case py::detail::npy_api::NPY_FLOAT_: return DType::Float32;
    case py::detail::npy_api::NPY_DOUBLE_: return DType::Float64;
    case py::detail::npy_api::NPY_UBYTE_: return DType::UInt8;
    default: return DType::Other;
  }
}

// torch.dtype objects are singletons: each is named once (str(dtype), "torch.float32"), then
// found by identity, which keeps the per-call cost of a tensor argument small.
inline DType torch_dtype(py::handle dtype_object, std::string& other_name) {
  static std::vector<std::pair<PyObject*, DType>> known;
  for (const auto& entry : known) {
    if (entry.first == dtype_object.ptr()) return entry.second;
  }
  const std::string name = py::str(dtype_object).cast<std::string>();
  DType dtype = DType::Other;
  if (name == "torch.float32") dtype = DType::Float32;
  if (name == "torch.float64") dtype = DType::Float64;
  if (name == "torch.float16") dtype = DType::Float16;
  if (name == "torch.bfloat16") dtype = DType::BFloat16;
  if (name == "torch.uint8") dtype = DType::UInt8;
  if (dtype == DType::Other) {
    other_name = name.rfind("torch.", 0) == 0 ? name.substr(6) : name;
    return dtype;
  }
  known.emplace_back(py::reinterpret_borrow<py::object>(dtype_object).release().ptr(), dtype);  // kept alive
  return dtype;
}

// The attribute names read from a tensor, made once (interned): a tensor argument costs a few
// attribute lookups and calls, not the making of their name strings.
struct TensorNames {
  py::object data_ptr, device, type, index, dtype, shape, is_contiguous;
};

inline const TensorNames& tensor_names() {
  static const TensorNames* names = [] {
    auto intern = [](const char* s) { return py::reinterpret_steal<py::object>(PyUnicode_InternFromString(s)); };
    // never destroyed: Python objects must not be released after the interpreter is gone
    return new TensorNames{intern("data_ptr"), intern("device"),        intern("type"), intern("index"),
                           intern("dtype"),    intern("shape"), intern("is_contiguous")};
  }();
  return *names;
}

inline py::object get(py::handle obj, const py::object& attribute) {
  PyObject* result = PyObject_GetAttr(obj.ptr(), attribute.ptr());
  if (result == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(result);
}

inline py::object call(py::handle obj, const py::object& method) {
  PyObject* result = PyObject_CallMethodObjArgs(obj.ptr(), method.ptr(), nullptr);
  if (result == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(result);
}

inline const char* expected_kind(Placement where) {
  return where == Placement::Host ? "a numpy.ndarray or a CPU torch.Tensor" : "a torch.Tensor on a CUDA device";
}

}  // namespace detail

// The view of `obj` (a NumPy array or a torch tensor; None: absent), checked for its type and
// its device (`where`).
inline Buffer buffer(py::handle obj, const char* name, Placement where) {
  Buffer b;
  b.name = name;
  if (obj.is_none()) return b;
  b.present = true;
  if (py::isinstance<py::array>(obj)) {
    if (where == Placement::Cuda) {
      type_error(std::string(name) + " must be " + detail::expected_kind(where) + ", got numpy.ndarray");
    }
    const auto a = py::reinterpret_borrow<py::array>(obj);
    b.dtype = detail::numpy_dtype(a);
    if (b.dtype == DType::Other) b.other_dtype = py::str(a.dtype()).cast<std::string>();
    b.shape.ndim = static_cast<int>(a.ndim());
    if (b.shape.ndim > Shape::kMaxDims) value_error(std::string(name) + " has too many dimensions");
    for (int d = 0; d < b.shape.ndim; ++d) b.shape.dims[static_cast<std::size_t>(d)] = a.shape(d);
    b.contiguous = (a.flags() & py::array::c_style) != 0;
    b.writeable = a.writeable();
    b.data = const_cast<void*>(a.data());
    return b;
  }
  const detail::TensorNames& names = detail::tensor_names();
  if (!PyObject_HasAttr(obj.ptr(), names.data_ptr.ptr())) {
    type_error(std::string(name) + " must be " + detail::expected_kind(where) + ", got " + detail::type_name(obj));
  }
  // a torch tensor: its device first (a meta tensor has no data to point at)
  b.is_tensor = true;
  const py::object device = detail::get(obj, names.device);
  const py::object device_type = detail::get(device, names.type);
  const char* wanted = where == Placement::Host ? "cpu" : "cuda";
  if (!PyUnicode_Check(device_type.ptr()) || PyUnicode_CompareWithASCIIString(device_type.ptr(), wanted) != 0) {
    value_error(std::string(name) +
                (where == Placement::Host ? " must be on the CPU (a numpy.ndarray or a CPU torch.Tensor)"
                                          : " must be on a CUDA device") +
                ", got a tensor on " + py::str(device_type).cast<std::string>());
  }
  if (where == Placement::Cuda) {
    const py::object index = detail::get(device, names.index);
    b.device_index = index.is_none() ? -1 : index.cast<int>();
  }
  b.dtype = detail::torch_dtype(detail::get(obj, names.dtype), b.other_dtype);
  const py::object shape = detail::get(obj, names.shape);  // torch.Size, a tuple
  if (!PyTuple_Check(shape.ptr())) type_error(std::string(name) + ".shape must be a tuple");
  b.shape.ndim = static_cast<int>(PyTuple_GET_SIZE(shape.ptr()));
  if (b.shape.ndim > Shape::kMaxDims) value_error(std::string(name) + " has too many dimensions");
  for (int d = 0; d < b.shape.ndim; ++d) {
    b.shape.dims[static_cast<std::size_t>(d)] = PyLong_AsLongLong(PyTuple_GET_ITEM(shape.ptr(), d));
  }
  b.contiguous = detail::call(obj, names.is_contiguous).cast<bool>();
  b.writeable = true;  // torch has no read-only tensors
  b.data = reinterpret_cast<void*>(detail::call(obj, names.data_ptr).cast<std::uintptr_t>());
  return b;
}

enum class Access { In, Out };

// The checks of one buffer: dtype, shape, C order, and writeable when an output. `dtype_role`
// says where the dtype comes from ("the dtype of x"), for the message.
inline void require(const Buffer& b, DType dtype, const Shape& shape, Access access,
                    const char* dtype_role = "the dtype of x") {
  if (b.dtype != dtype) {
    type_error(std::string(b.name) + " must have dtype " + dtype_name(dtype) + " (" + dtype_role + "), got " +
               b.dtype_str());
  }
  if (shape.ndim >= 0 && !(b.shape == shape)) {
    value_error(std::string(b.name) + " must have shape " + shape.str() + ", got " + b.shape.str());
  }
  if (!b.contiguous) value_error(std::string(b.name) + " must be C-contiguous");
  if (access == Access::Out && !b.writeable) value_error(std::string(b.name) + " must be writeable");
}

// The dtype of x, which fixes the others: float32 or float64, and on CUDA (allow_half) also
// float16 and bfloat16.
inline DType require_data_dtype(const Buffer& x, bool allow_half) {
  const bool full = x.dtype == DType::Float32 || x.dtype == DType::Float64;
  const bool half = x.dtype == DType::Float16 || x.dtype == DType::BFloat16;
  if (full || (allow_half && half)) return x.dtype;
  type_error(std::string(x.name) + (allow_half ? " must be float32, float64, float16 or bfloat16, got "
                                               : " must be float32 or float64, got ") +
             x.dtype_str());
}

// x of a [T, N] op: present, 2-D, its dtype as require_data_dtype, C order.
inline DType require_time_major(const Buffer& x, bool allow_half) {
  if (!x.present) type_error(std::string(x.name) + " must not be None");
  const DType dtype = require_data_dtype(x, allow_half);
  if (x.shape.ndim != 2) value_error(std::string(x.name) + " must be 2-D [T, N], got shape " + x.shape.str());
  require(x, dtype, x.shape, Access::In);
  return dtype;
}

// buffer + require: a required argument.
inline Buffer argument(py::handle obj, const char* name, Placement where, DType dtype, const Shape& shape,
                       Access access, const char* dtype_role = "the dtype of x") {
  Buffer b = buffer(obj, name, where);
  if (!b.present) type_error(std::string(name) + " must not be None");
  require(b, dtype, shape, access, dtype_role);
  return b;
}

// buffer + require unless None: an optional argument.
inline Buffer optional_argument(py::handle obj, const char* name, Placement where, DType dtype, const Shape& shape,
                                Access access, const char* dtype_role = "the dtype of x") {
  Buffer b = buffer(obj, name, where);
  if (b.present) require(b, dtype, shape, access, dtype_role);
  return b;
}

// A workspace: a uint8 buffer of at least `bytes` bytes, 8-byte aligned (the kernels keep
// float64 sums in it).
inline Buffer workspace_argument(py::handle obj, const char* name, Placement where, int64_t bytes) {
  Buffer b = buffer(obj, name, where);
  if (!b.present) type_error(std::string(name) + " must not be None");
  require(b, DType::UInt8, Shape::any(), Access::Out, "a workspace is bytes");
  if (b.nbytes() < bytes) {
    value_error(std::string(name) + " must have at least " + std::to_string(bytes) + " bytes, got " +
                std::to_string(b.nbytes()));
  }
  if (reinterpret_cast<std::uintptr_t>(b.data) % 8 != 0) value_error(std::string(name) + " must be 8-byte aligned");
  return b;
}

// The kernels read inputs while writing outputs (and use grad_x as scratch): an output may not
// share memory with any other argument. On CUDA, every buffer is on x's device.
inline void require_no_overlap(std::initializer_list<std::pair<const Buffer*, Access>> buffers) {
  for (const auto& [out, access] : buffers) {
    if (access != Access::Out || !out->present || out->nbytes() == 0) continue;
    const char* out_begin = static_cast<const char*>(out->data);
    const char* out_end = out_begin + out->nbytes();
    for (const auto& [other, other_access] : buffers) {
      (void)other_access;
      if (other == out || !other->present || other->nbytes() == 0) continue;
      const char* begin = static_cast<const char*>(other->data);
      const char* end = begin + other->nbytes();
      if (begin < out_end && out_begin < end) {
        value_error(std::string(out->name) + " must not share memory with " + other->name);
      }
    }
  }
}

inline void require_same_device(const Buffer& x, std::initializer_list<const Buffer*> buffers) {
  for (const Buffer* b : buffers) {
    if (b->present && b->device_index != x.device_index) {
      value_error(std::string(b->name) + " is on cuda:" + std::to_string(b->device_index) + " but " + x.name +
                  " is on cuda:" + std::to_string(x.device_index));
    }
  }
}

// A scalar parameter that may live in memory: a Python number, or a 0-d buffer of `dtype`
// (a learnable decay computed on the device). On the host the buffer's value is read; on
// CUDA its address is passed (reading it would synchronize the stream).
struct ScalarArgument {
  double value = 0;
  const void* device = nullptr;  // Placement::Cuda and a buffer: its address
  Buffer buffer;                 // the buffer, when one was given
};

inline ScalarArgument scalar_argument(py::handle obj, const char* name, Placement where, DType dtype) {
  ScalarArgument s;
  if (!py::isinstance<py::array>(obj) && !PyObject_HasAttr(obj.ptr(), detail::tensor_names().data_ptr.ptr())) {
    const double value = PyFloat_AsDouble(obj.ptr());
    if (value == -1.0 && PyErr_Occurred()) {
      PyErr_Clear();
      type_error(std::string(name) + " must be a float or a 0-d buffer, got " + detail::type_name(obj));
    }
    s.value = value;
    return s;
  }
  s.buffer = argument(obj, name, where, dtype, Shape::scalar(), Access::In, "the state dtype");
  if (where == Placement::Cuda) {
    s.device = s.buffer.data;
  } else {
    s.value = dtype == DType::Float64 ? *s.buffer.as<const double>() : *s.buffer.as<const float>();
  }
  return s;
}

}  // namespace spikegrad::bindings

// Bindings of the dose-operator launchers (csrc/cuda/operator_cuda.h), registered into _cuda.
#pragma once

#include <pybind11/pybind11.h>

namespace sfrt::bind {

/// Adds the *_device launchers to module m; they take device addresses (cupy's .data.ptr) and sizes.
void register_cuda_operators(pybind11::module_& m);

}  // namespace sfrt::bind

// Bindings of the dose-operator drivers (csrc/cpu/operator_cpu.h), registered into _core.
#pragma once

#include <pybind11/pybind11.h>

namespace sfrt::bind {

/// Adds bev_geometry, photon_forward, photon_adjoint, proton_forward, proton_adjoint to module m.
void register_operators(pybind11::module_& m);

}  // namespace sfrt::bind

// Hardening on the CUDA backend (label `gpu`; each test skips with the reason when no usable device is
// present).
#include "delivery_cases.hpp"
#include "hardening_cases.hpp"

namespace rk_cases {

INSTANTIATE_TEST_SUITE_P(cuda, HardeningCases, both_modes(rk::backend::cuda), backend_name);
INSTANTIATE_TEST_SUITE_P(cuda, DeliveryCases, both_modes(rk::backend::cuda), backend_name);

} // namespace rk_cases

// Setup calls as transactions and tables that give slots back, on the CUDA backend (label `gpu`; each test
// skips with the reason when no usable device is present).
#include "reuse_cases.hpp"

namespace rk_cases {

INSTANTIATE_TEST_SUITE_P(cuda, TransactionCases, both_modes(rk::backend::cuda), backend_name);
INSTANTIATE_TEST_SUITE_P(cuda, ReuseCases, both_modes(rk::backend::cuda), backend_name);

} // namespace rk_cases

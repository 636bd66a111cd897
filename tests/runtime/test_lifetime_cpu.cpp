// Setup calls as transactions and tables that give slots back, on the CPU backend (compiled by the host
// compiler; also run under ThreadSanitizer and ASan/UBSan). A separate binary from runtime_cpu so the two
// compile in parallel.
#include "reuse_cases.hpp"

namespace rk_cases {

INSTANTIATE_TEST_SUITE_P(cpu, TransactionCases, both_modes(rk::backend::cpu), backend_name);
INSTANTIATE_TEST_SUITE_P(cpu, ReuseCases, both_modes(rk::backend::cpu), backend_name);

} // namespace rk_cases

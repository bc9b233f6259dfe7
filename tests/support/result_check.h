// error_of: a Result's error as an optional, so that one expectation checks both that a call failed and how.
//
// Usage:
//   EXPECT_EQ(test::error_of(mem.read<uint32_t>(GuestAddress{0x3000})), MemoryError::OutOfRange);
//   EXPECT_EQ(test::error_of(r), std::nullopt);   // r succeeded
#pragma once

#include <optional>
#include <type_traits>

namespace vgpu::test {

// nullopt when `r` holds a value, else its error.
template <class R>
auto error_of(const R& r) -> std::optional<std::decay_t<decltype(r.error())>> {
  if (r.has_value()) return std::nullopt;
  return r.error();
}

}  // namespace vgpu::test

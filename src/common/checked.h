// Overflow-safe arithmetic for every guest- or frontend-controlled number.
//
//   auto end = checked_add(offset, len);      // std::nullopt on overflow
//   if (!end || *end > region_size) return fail(...);
//
// Rule: compare each operand to the limit before summing, or sum with these helpers; never write
// `a + b <= limit` on guest values (the sum may wrap and pass).
#pragma once

#include <concepts>
#include <cstdint>
#include <optional>

namespace vgpu {

template <std::unsigned_integral T>
constexpr std::optional<T> checked_add(T a, T b) {
  T sum{};
  return __builtin_add_overflow(a, b, &sum) ? std::nullopt : std::optional<T>(sum);
}

template <std::unsigned_integral T>
constexpr std::optional<T> checked_sub(T a, T b) {
  if (b > a) return std::nullopt;
  return static_cast<T>(a - b);
}

template <std::unsigned_integral T>
constexpr std::optional<T> checked_mul(T a, T b) {
  T product{};
  return __builtin_mul_overflow(a, b, &product) ? std::nullopt : std::optional<T>(product);
}

// True when [offset, offset + len) lies inside [0, size), without ever computing a wrapped sum.
template <std::unsigned_integral T>
constexpr bool range_fits(T offset, T len, T size) {
  return offset <= size && len <= size - offset;
}

}  // namespace vgpu

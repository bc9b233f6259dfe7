// Result<T, E>: errors are values. Built on tl::expected (Debian's libexpected-dev) because g++ 12 only has
// std::expected under -std=c++23 and clang 14 (our fuzzer compiler) cannot compile libstdc++'s <expected>.
//
//   Result<int, Error> parse(std::string_view s);
//   auto r = parse("7");
//   if (!r) log(r.error());
#pragma once

#include <tl/expected.hpp>

namespace vgpu {

template <class T, class E>
using Result = tl::expected<T, E>;

template <class E>
using Unexpected = tl::unexpected<E>;

template <class E>
constexpr Unexpected<std::decay_t<E>> fail(E&& e) {
  return Unexpected<std::decay_t<E>>(std::forward<E>(e));
}

}  // namespace vgpu

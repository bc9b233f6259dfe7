// Address spaces as distinct types, so that a guest-physical address can never be passed where a frontend
// (QEMU process) virtual address is expected, or the other way round.
//
//   GuestAddress gpa{0x1000};
//   auto next = offset_by(gpa, len);   // std::nullopt on overflow
//   uint64_t n = raw(gpa);
#pragma once

#include <cstdint>
#include <optional>

#include "common/checked.h"

namespace vgpu {

// A guest-physical address (what virtqueue descriptors and virtio-gpu backing entries carry).
enum class GuestAddress : uint64_t {};
// A virtual address in the frontend's (QEMU's) address space (what SET_VRING_ADDR carries).
enum class FrontendVirtAddr : uint64_t {};

template <class A>
concept AddressKind = std::same_as<A, GuestAddress> || std::same_as<A, FrontendVirtAddr>;

template <AddressKind A>
constexpr uint64_t raw(A a) {
  return static_cast<uint64_t>(a);
}

template <AddressKind A>
constexpr std::optional<A> offset_by(A a, uint64_t delta) {
  auto sum = checked_add(raw(a), delta);
  if (!sum) return std::nullopt;
  return A{*sum};
}

}  // namespace vgpu

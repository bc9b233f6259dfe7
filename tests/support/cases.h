// Table-driven tests: a case struct whose first member is `const char* name`, CaseTest<Fixture, Case> as the
// TEST_P fixture, and CaseName to name each instance after its case.
//
// Usage:
//   struct SizeCase {
//     const char* name;
//     uint32_t width, height;
//   };
//   using RefusedSize = test::CaseTest<RendererTest, SizeCase>;
//   TEST_P(RefusedSize, Create_Fails) { EXPECT_FALSE(renderer.create(GetParam().width, GetParam().height)); }
//   INSTANTIATE_TEST_SUITE_P(Sizes, RefusedSize, testing::Values(SizeCase{"ZeroWidth", 0, 4}), test::CaseName{});
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace vgpu::test {

template <class Fixture, class Case>
class CaseTest : public Fixture, public testing::WithParamInterface<Case> {};

struct CaseName {
  template <class Info>
  std::string operator()(const Info& info) const {
    return info.param.name;
  }
};

}  // namespace vgpu::test

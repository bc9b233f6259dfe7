// LogRateLimit: a call site prints its burst, then nothing until the window ends, and the first line after
// that reports how many were suppressed (audit F9: guest-triggered warnings must not flood the log).
#include <gtest/gtest.h>

#include <cstdint>

#include "common/log.h"

namespace vgpu {
namespace {

TEST(LogRateLimit, Burst_ThenSuppressed_ThenCountReported) {
  LogRateLimit limit;
  uint64_t suppressed = 99;
  for (uint32_t i = 0; i < LogRateLimit::kBurst; ++i) {
    ASSERT_TRUE(limit.allow_at(1000, suppressed)) << "line " << i;
    EXPECT_EQ(suppressed, 0u);
  }

  for (int i = 0; i < 500; ++i) EXPECT_FALSE(limit.allow_at(1000 + i, suppressed));

  EXPECT_FALSE(limit.allow_at(1000 + LogRateLimit::kWindowMs - 1, suppressed));
  ASSERT_TRUE(limit.allow_at(1000 + LogRateLimit::kWindowMs, suppressed));
  EXPECT_EQ(suppressed, 501u);
}

TEST(LogRateLimit, QuietSite_NeverSuppressed) {
  LogRateLimit limit;
  uint64_t suppressed = 0;
  for (int64_t t = 0; t < 100 * LogRateLimit::kWindowMs; t += LogRateLimit::kWindowMs / 4) {
    ASSERT_TRUE(limit.allow_at(t, suppressed));
    EXPECT_EQ(suppressed, 0u);
  }
}

}  // namespace
}  // namespace vgpu

#include "fs/fuse/guard.h"

#include <gtest/gtest.h>

#include <new>
#include <stdexcept>
#include <vector>

namespace buildfs {
namespace {

std::vector<int> Failures(void (*op)()) {
  std::vector<int> codes;
  RunGuarded(op, [&](int code) { codes.push_back(code); });
  return codes;
}

TEST(GuardTest, ReturningOperationDoesNotFail) {
  EXPECT_EQ(Failures([] {}), std::vector<int>{});
}

TEST(GuardTest, OutOfMemoryIsENOMEM) {
  EXPECT_EQ(Failures([] { throw std::bad_alloc(); }), std::vector<int>{ENOMEM});
}

TEST(GuardTest, StandardExceptionIsEIO) {
  EXPECT_EQ(Failures([] { throw std::out_of_range("index"); }), std::vector<int>{EIO});
}

TEST(GuardTest, AnythingElseThrownIsEIO) {
  EXPECT_EQ(Failures([] { throw 42; }), std::vector<int>{EIO});
}

}  // namespace
}  // namespace buildfs

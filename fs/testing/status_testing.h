// GoogleTest assertions for Status and Result<T>, printing the error message
// on failure:
//
//   EXPECT_OK(repo->SetRef("a", commit));
//   ASSERT_OK_AND_ASSIGN(auto layer, OstreeLayer::Open(repo_path, commit));
//   EXPECT_ERRNO(repo->ResolveRef("missing"), ENOENT);
#pragma once

#include <gtest/gtest.h>

#include "fs/common/status.h"

namespace buildfs::testing {

inline const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

}  // namespace buildfs::testing

#define BUILDFS_TEST_STATUS(expr) ::buildfs::testing::StatusOf(expr)

#define EXPECT_OK(expr)                                              \
  do {                                                               \
    const auto& _test_st = (expr);                                   \
    EXPECT_TRUE(BUILDFS_TEST_STATUS(_test_st).ok())                  \
        << #expr << ": " << BUILDFS_TEST_STATUS(_test_st).message(); \
  } while (0)

#define ASSERT_OK(expr)                                              \
  do {                                                               \
    const auto& _test_st = (expr);                                   \
    ASSERT_TRUE(BUILDFS_TEST_STATUS(_test_st).ok())                  \
        << #expr << ": " << BUILDFS_TEST_STATUS(_test_st).message(); \
  } while (0)

// Expects an error with errno `code`.
#define EXPECT_ERRNO(expr, errno_value)                              \
  do {                                                               \
    const auto& _test_st = (expr);                                   \
    EXPECT_EQ(BUILDFS_TEST_STATUS(_test_st).code(), (errno_value))   \
        << #expr << ": " << BUILDFS_TEST_STATUS(_test_st).message(); \
  } while (0)

#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  ASSERT_OK_AND_ASSIGN_IMPL(BUILDFS_CONCAT(_test_res_, __LINE__), lhs, expr)
#define ASSERT_OK_AND_ASSIGN_IMPL(tmp, lhs, expr)                   \
  auto tmp = (expr);                                                \
  ASSERT_TRUE(tmp.ok()) << #expr << ": " << tmp.status().message(); \
  lhs = std::move(tmp).value()

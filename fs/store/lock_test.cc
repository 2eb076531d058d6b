// FileLock over real lock files.
#include "fs/store/lock.h"

#include <gtest/gtest.h>

#include <optional>

#include "fs/testing/status_testing.h"
#include "fs/testing/temp_dir.h"

namespace buildfs {
namespace {

class FileLockTest : public ::testing::Test {
 protected:
  testing::TempDir tmp_;
  std::string path_ = tmp_.Path("lock");
};

TEST_F(FileLockTest, TryAcquireCreatesTheFile) {
  ASSERT_OK(FileLock::TryAcquire(path_));
  EXPECT_TRUE(testing::Exists(path_));
}

TEST_F(FileLockTest, SecondTryAcquireFailsWithEWOULDBLOCK) {
  ASSERT_OK_AND_ASSIGN(FileLock held, FileLock::TryAcquire(path_));
  EXPECT_ERRNO(FileLock::TryAcquire(path_), EWOULDBLOCK);
}

TEST_F(FileLockTest, AcquireGivesUpAfterTimeout) {
  ASSERT_OK_AND_ASSIGN(FileLock held, FileLock::TryAcquire(path_));
  EXPECT_ERRNO(FileLock::Acquire(path_, 0), EWOULDBLOCK);
}

TEST_F(FileLockTest, IsHeldWhileHeld) {
  ASSERT_OK_AND_ASSIGN(FileLock held, FileLock::TryAcquire(path_));
  EXPECT_TRUE(FileLock::IsHeld(path_));
}

TEST_F(FileLockTest, DestroyingTheLockReleasesIt) {
  { ASSERT_OK_AND_ASSIGN(FileLock held, FileLock::TryAcquire(path_)); }
  EXPECT_FALSE(FileLock::IsHeld(path_));
  EXPECT_OK(FileLock::TryAcquire(path_));
}

TEST_F(FileLockTest, MissingFileIsNotHeld) { EXPECT_FALSE(FileLock::IsHeld(path_)); }

}  // namespace
}  // namespace buildfs

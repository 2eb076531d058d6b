// Harness for the buildfs integration tests: runs the real `buildfs` binary
// (path from the BUILDFS_BIN compile definition), owns temporary workspaces
// and every mount made inside them, builds sample trees and compares trees.
//
// Helpers report errors by throwing std::runtime_error with the path and the
// errno text; GoogleTest turns an escaped exception into a test failure, so
// tests stay free of error plumbing for steps that are not under test.
// Not thread-safe: one fixture per test, tests in one process run in sequence.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tests/integration/process.h"
#include "tests/integration/temp_dir.h"
#include "tests/integration/tree.h"

namespace buildfs::testing {

// --------------------------------------------------------------- fixtures

// A fresh workspace (`buildfs init`) in a TempDir that is traversable by
// other users, so permission tests can run as uid 1000.
class WorkspaceTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  const std::string& ws() const { return ws_; }
  std::string tmp(std::string_view name) const;  // a path beside the workspace
  std::string BuildDir(std::string_view name) const;

  // `buildfs -C WS args...`
  CommandResult Buildfs(const std::vector<std::string>& args);
  // Each asserts success (ADD_FAILURE with the command's output otherwise).
  bool NewBuild(const std::string& name, const std::string& from_dir = {});
  bool Mount(const std::string& name);
  bool Umount(const std::string& name);

  static constexpr std::string_view kCacheName = "cache";
  // Scan options for a mount: the workspace cache at cache/ is not part of the base.
  static ScanOptions MountScan() { return ScanOptions{{std::string(kCacheName)}}; }

 private:
  std::unique_ptr<TempDir> tmp_;
  std::string ws_;
};

}  // namespace buildfs::testing

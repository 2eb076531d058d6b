// The fixture of the mount tests: the sample tree (tree.h, MakeSampleTree)
// committed as the base of build "b", mounted at WS/b, with a file in the
// workspace cache; and small helpers the mount tests share. Each test checks
// one behaviour that the CLI contract or DESIGN.md promises.
#pragma once

#include <sys/types.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tests/integration/harness.h"

namespace buildfs::testing {

inline constexpr long kFuseSuperMagic = 0x65735546;
inline constexpr const char* kOstree = "/usr/bin/ostree";

// errno of a call that returns -1 on failure, 0 on success.
inline int ErrnoOf(long rc) { return rc < 0 ? errno : 0; }

// A failed command whose stderr is one line "buildfs: WHAT: WHY".
::testing::AssertionResult IsOneLineError(const CommandResult& r);

// Lists a directory with getdents64 and a tiny buffer, so a listing takes many
// calls and every resume offset the filesystem hands out gets used.
// `after_batch` runs after each call with the names it returned.
std::vector<std::string> ListDirInSmallBatches(
    const std::string& path,
    const std::function<void(const std::vector<std::string>&)>& after_batch = {});

std::vector<std::string> Sorted(std::vector<std::string> v);

// Value of xattr `name` of `path` (not following symlinks); *err = errno or 0.
std::string GetXattr(const std::string& path, const std::string& name, int* err);
// All xattr names of `path`, not following symlinks. Throws on failure.
std::vector<std::string> ListXattrs(const std::string& path);

class MountTest : public WorkspaceTest {
 protected:
  void SetUp() override;

  // Path of `rel` inside the mounted build.
  std::string M(std::string_view rel) const { return root_ + "/" + std::string(rel); }

  // The daemon serving build `name` of this workspace: per the contract, the
  // process whose command line names buildfs and the build.
  std::vector<pid_t> DaemonPids(const std::string& name);
  // SIGKILLs that daemon and waits until it is gone.
  void KillDaemon(const std::string& name);
  // The object for build `name` in `list --json` (an empty object and a
  // failure when there is none).
  nlohmann::json ListEntry(const std::string& name);
  // `ostree cat REF PATH` in the workspace repo.
  std::string OstreeCat(const std::string& ref, const std::string& path);

  static constexpr std::string_view kCacheContent = "shared cache content\n";
  std::string src_;   // the tree committed as the base
  std::string root_;  // WS/b
};

}  // namespace buildfs::testing

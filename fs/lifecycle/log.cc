// buildfs log: a build's commits, newest first.
#include "fs/lifecycle/build_lock.h"
#include "fs/lifecycle/commit.h"
#include "fs/lifecycle/stack.h"
#include "fs/store/objects.h"

namespace buildfs {

Result<std::vector<LogEntry>> BuildLog(const Workspace& ws, const std::string& name) {
  BuildInfo info;
  {
    // An interrupted commit is finished first, so the log and the ref agree.
    BUILDFS_ASSIGN_OR_RETURN(BuildLock lock, BuildLock::Acquire(ws, name, "log"));
    BUILDFS_ASSIGN_OR_RETURN(FileLock meta, LockWorkspaceMeta(ws));
    BUILDFS_ASSIGN_OR_RETURN(info, RecoverBuild(ws, name));
  }
  BUILDFS_ASSIGN_OR_RETURN(ObjectReader reader, ObjectReader::Open(ws.repo_path()));
  std::vector<LogEntry> out;
  std::string cur = info.base;
  while (!cur.empty()) {
    auto commit = reader.LoadCommit(cur);
    if (!commit.ok()) {
      if (commit.code() == ENOENT && !out.empty()) break;  // history pruned below here
      return commit.status();
    }
    out.push_back({cur, commit->subject.substr(0, commit->subject.find('\n')), commit->timestamp});
    cur = commit->parent;
  }
  return out;
}

}  // namespace buildfs

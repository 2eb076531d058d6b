// The workspace's OSTree repository: create, open, refs, commits, prune.
//
// This is the only code that includes <ostree.h>. The read path of the
// filesystem does not come through here (see objects.h); this is for the CLI
// and the commit path. A Repo is used from one thread at a time; separate
// processes may use the same repository at once (OSTree's repo lock: writers
// take it shared, prune takes it exclusive).
#pragma once

#include <sys/stat.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "fs/common/progress.h"
#include "fs/common/status.h"
#include "fs/common/xattr.h"
#include "fs/store/entry_table.h"
#include "fs/store/objects.h"

typedef struct OstreeRepo OstreeRepo;
typedef struct OstreeMutableTree OstreeMutableTree;

namespace buildfs {

class Repo;

// One commit being written. Directories are OstreeMutableTree handles owned by
// the builder. REQUIRES: used from one thread.
class CommitBuilder {
 public:
  using Dir = OstreeMutableTree*;
  ~CommitBuilder();
  CommitBuilder(const CommitBuilder&) = delete;
  CommitBuilder& operator=(const CommitBuilder&) = delete;

  Dir root() const { return root_; }
  Result<Dir> AddDir(Dir parent, const std::string& name);
  // Adds an existing tree of the repo (no copying, no hashing) as `name`;
  // its dirmeta carries its own times (entry_table.h).
  Status AddTree(Dir parent, const std::string& name, const std::string& tree,
                 const std::string& meta);
  // Adds the content object `checksum` as file `name`, with its times.
  Status AddFile(Dir parent, const std::string& name, const std::string& checksum,
                 const EntryRecord& times);
  // Writes the dirmeta of `dir`: owner, mode, xattrs, and the times table of
  // the directory (`self`) and of the files added to it. REQUIRES: every
  // file of `dir` added; called once per directory, the root last.
  Status FinishDir(Dir dir, uid_t uid, gid_t gid, mode_t mode, const Xattrs& xattrs,
                   const EntryRecord& self);
  // Hashes and stores the entry `name` in `dir_fd` (regular file, symlink or
  // special file) with `st`'s owner and mode and the given xattrs; returns the
  // content checksum.
  Result<std::string> WriteEntry(int dir_fd, const std::string& name, const struct stat& st,
                                 const Xattrs& xattrs);
  // The same for an entry given by its attributes and, for a regular file, an
  // fd open on its content (read from offset 0), or, for a symlink, its target.
  Result<std::string> WriteContent(const struct stat& st, const Xattrs& xattrs, int fd,
                                   const std::string& symlink_target);
  // Writes the tree and the commit (`message`: a subject line, then maybe a
  // body), points `ref` at it, and ends the transaction. `parent` may be "".
  // Returns the commit checksum; when
  // `unless_root` names the root tree and dirmeta the tree turns out to have,
  // writes no commit, moves no ref and returns "".
  struct Root {
    std::string tree, meta;
  };
  Result<std::string> Finish(const std::string& ref, const std::string& parent,
                             const std::string& message, const Root* unless_root = nullptr);

 private:
  friend class Repo;
  explicit CommitBuilder(Repo* repo);
  Status WriteDirMeta(Dir dir, uid_t uid, gid_t gid, mode_t mode, const Xattrs& xattrs);
  // Stores `data` as a regular file object (root-owned, 0644).
  Result<std::string> WriteBytes(const std::string& data);

  Repo* repo_;
  Dir root_ = nullptr;
  // The times of the files added to each directory not yet finished.
  std::unordered_map<Dir, std::map<std::string, EntryRecord>> times_;
  bool in_transaction_ = false;
  void* lock_ = nullptr;  // OstreeRepoAutoLock*
  std::vector<std::string> staging_;  // the staging directories this transaction may have made
};

class Repo {
 public:
  static Result<std::unique_ptr<Repo>> Create(const std::string& path);
  static Result<std::unique_ptr<Repo>> Open(const std::string& path);
  ~Repo();
  Repo(const Repo&) = delete;
  Repo& operator=(const Repo&) = delete;

  const std::string& path() const { return path_; }
  OstreeRepo* raw() const { return repo_; }

  // The commit `ref` points at; ENOENT when there is no such ref.
  Result<std::string> ResolveRef(const std::string& ref);
  // Refs under `prefix` (e.g. "builds/demo/"), as full names.
  Result<std::vector<std::string>> ListRefs(const std::string& prefix);
  Status SetRef(const std::string& ref, const std::string& checksum);
  Status DeleteRef(const std::string& ref);

  // Writes the tree of `commit` into the directory `dest` (made when
  // missing), merged with what is there: files of the same name are
  // replaced. Files get the caller as owner; buildfs's times tables
  // (entry_table.h) are left out.
  Status Checkout(const std::string& commit, const std::string& dest);
  // Starts a commit (a transaction under the shared repo lock).
  Result<std::unique_ptr<CommitBuilder>> BeginCommit();
  // Commits the directory tree at `dir` ("" = an empty tree) as `ref`,
  // reporting entries stored. Cancelled or failed, it leaves no object
  // behind (the transaction is aborted) and moves no ref.
  Result<std::string> CommitDirectory(const std::string& dir, const std::string& ref,
                                      const std::string& subject, const Progress& progress = {});

  // Deletes the staging directories of transactions nobody runs any more
  // (their process died) that are older than `min_age_s`, and those in
  // `names` (an aborted transaction's own): OSTree keeps them to resume, but
  // their half-written objects are only garbage here. A directory whose lock
  // a running transaction holds is never touched.
  void DropAbandonedStaging(int min_age_s, const std::vector<std::string>& names = {});
  // The staging directories in repo/tmp now.
  std::vector<std::string> StagingDirs();

  struct PruneStats {
    int objects_total = 0;
    int objects_pruned = 0;
    uint64_t bytes_freed = 0;
  };
  // Deletes the objects no ref reaches, under the exclusive repo lock.
  Result<PruneStats> Prune();

 private:
  Repo(OstreeRepo* repo, std::string path) : repo_(repo), path_(std::move(path)) {}
  OstreeRepo* repo_;
  std::string path_;
};

}  // namespace buildfs

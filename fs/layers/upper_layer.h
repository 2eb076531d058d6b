// UpperLayer: the build's private writable layer, the only layer the overlay
// changes, together with its work/ directory (beside it, on the same
// filesystem). Every change to the upper's on-disk format (upper_format.h)
// goes through here: entries built in work/ and renamed into place, whiteouts,
// opaque and redirect marks, entries moved out to be deleted, and orphans
// (files unlinked while still open, kept in work/ until released).
//
// Reads of the upper go through dirs(), a DirLayer in overlay format that is
// also the overlay's layer 0. A stack switch (commit, branch, reset) gives the
// upper a new directory (SwitchTo); work/ stays.
//
// An entry is named by where it lives: a Parent (an open directory and a
// name in it), from OpenParent for the upper, or from NewWorkEntry for work/.
// Thread-compatible: the overlay serializes the changes it makes.
#pragma once

#include <sys/statvfs.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "fs/layers/dir_layer.h"

namespace buildfs {

class UpperLayer {
 public:
  using Parent = DirLayer::Parent;

  UpperLayer(std::shared_ptr<DirLayer> upper, std::shared_ptr<DirLayer> work);

  const std::shared_ptr<DirLayer>& dirs() const { return upper_; }
  const std::shared_ptr<DirLayer>& work() const { return work_; }
  // A stack switch: the upper is another directory from now on.
  void SwitchTo(std::shared_ptr<DirLayer> upper) { upper_ = std::move(upper); }

  // --- the upper's entries ---

  // The directory holding `path` and `path`'s last component; for the
  // root (""), the root itself and ".".
  Result<Parent> OpenParent(const std::string& path);
  Result<UniqueFd> Open(const std::string& path, int flags);
  Result<struct statvfs> StatFs();

  // --- building entries in work/ ---

  // Removes what a killed daemon left in work/ (before the mount serves).
  Status ClearWork();
  // A fresh name in work/ to build an entry at; `what` and `ino` only make
  // it readable in `ls work/`.
  Result<Parent> NewWorkEntry(const char* what, uint64_t ino);
  // Moves `built` (from NewWorkEntry) to `path`: a name that is free, or
  // (over_whiteout) a whiteout, which is exchanged and then deleted. On
  // failure `built` is removed.
  Status Install(const Parent& built, const std::string& path, bool over_whiteout);
  // Removes an entry of work/, whole (best effort: a leftover is cleared at
  // the next mount).
  void Discard(const Parent& in_work);

  // --- moving and removing entries ---

  // Renames `from` to `to`; with `leave_whiteout` a whiteout takes the old
  // name (in the same step where the filesystem can).
  Status Move(const Parent& from, const Parent& to, bool leave_whiteout);
  Status Exchange(const Parent& a, const Parent& b);
  // Links the file `from` at `to`: a free name, or (over_whiteout) a
  // whiteout, which the link replaces in one step.
  Status Link(const Parent& from, const Parent& to, uint64_t ino, bool over_whiteout);
  // Removes the non-directory `at`.
  Status Remove(const Parent& at);
  // A whiteout at the free name `at`.
  Status Whiteout(const Parent& at);
  // Replaces the entry `at` by a whiteout in one step.
  Status ReplaceWithWhiteout(const Parent& at, uint64_t ino);
  // Moves the entry `at` out to work/ (to be deleted with Discard); with
  // `leave_whiteout` a whiteout takes its place in the same step.
  Result<Parent> MoveToWork(const Parent& at, uint64_t ino, bool leave_whiteout);

  // --- orphans: unlinked while open ---

  // Moves the last link `at` to work/ as the orphan of `ino`, or (not the
  // last link) gives the orphan a link of its own.
  Status MakeOrphan(const Parent& at, uint64_t ino, bool last_link);
  Result<Parent> OrphanRef(uint64_t ino);
  Result<LayerEntry> LookupOrphan(uint64_t ino);
  Result<Xattrs> OrphanXattrs(uint64_t ino);
  Result<UniqueFd> OpenOrphan(uint64_t ino, int flags);
  void DropOrphan(uint64_t ino);

 private:
  static std::string OrphanName(uint64_t ino) { return "orphan-" + std::to_string(ino); }
  std::string WorkName(const char* what, uint64_t ino);

  std::shared_ptr<DirLayer> upper_;
  std::shared_ptr<DirLayer> work_;
  std::atomic<uint64_t> work_seq_{0};
};

}  // namespace buildfs

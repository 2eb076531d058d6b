// Entry times: what buildfs keeps beside an OSTree tree so that a build shows
// the same times before a commit, after it and after a remount.
//
// OSTree records no times and its content objects must stay shared between
// files that differ only in their times. So each directory's dirmeta carries
// a table for the directory itself and its files (not its subdirectories,
// whose own dirmeta has their record): mtime and atime with nanoseconds, and
// the inode number the entry had in the build that committed it (0 when it
// had none of its own), so numbers survive a commit. A commit that changes
// one file writes new dirmeta only along its path: it stays O(changes).
//
// Where the table lives: small tables (most directories) in the dirmeta's
// xattr `user.buildfs.times`; a table above kTimesXattrMax bytes in a file
// `.buildfs-times` of the directory itself (and the xattr says "file"), so an
// `ostree checkout` never has to set an xattr larger than a filesystem holds.
// A mount hides both. Thread-safe (pure functions).
#pragma once

#include <sys/types.h>
#include <time.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fs/common/status.h"

namespace buildfs {

inline constexpr char kTimesXattr[] = "user.buildfs.times";
inline constexpr char kTimesFile[] = ".buildfs-times";
inline constexpr char kTimesInFile[] = "file";  // the xattr's value when the table is in kTimesFile
inline constexpr size_t kTimesXattrMax = 1024;

struct EntryTimes {
  struct timespec mtime {};
  struct timespec atime {};
  uint64_t ino = 0;  // 0: none recorded

  bool operator==(const EntryTimes& o) const {
    return mtime.tv_sec == o.mtime.tv_sec && mtime.tv_nsec == o.mtime.tv_nsec &&
           atime.tv_sec == o.atime.tv_sec && atime.tv_nsec == o.atime.tv_nsec && ino == o.ino;
  }
};

// Record 0 is the directory itself, then one per file in the dirtree's order
// (the times file, when there is one, excluded).
using TimesTable = std::vector<EntryTimes>;

// A compact binary form: a version byte, the count, then per record a flags
// varint, the mtime seconds as a zigzag delta from the record before, the
// nanoseconds, the atime only when it differs from the mtime, and the inode
// number only when there is one.
std::string EncodeTimes(const TimesTable& table);
// EUCLEAN when `data` is not a table this version wrote.
Result<TimesTable> DecodeTimes(std::string_view data);

}  // namespace buildfs

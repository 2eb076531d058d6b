// The entry table: what buildfs keeps beside an OSTree tree so that a build
// shows the same entries before a commit, after it and after a remount, and
// so that a mount can stat a file without touching its object.
//
// OSTree records no times and its content objects must stay shared between
// files that differ only in their times. So each directory's dirmeta carries
// a table for the directory itself and its files (not its subdirectories,
// whose own dirmeta has their record): mtime and atime with nanoseconds, the
// inode number the entry had in the build that committed it (0 when the
// path alone gives it), and for files what stat shows (type and mode, owner,
// size, device) and whether they have xattrs. A commit that changes one file
// writes new dirmeta only along its path: it stays O(changes).
//
// Where the table lives: small tables (most directories) in the dirmeta's
// xattr `user.buildfs.times`; a table above kTimesXattrMax bytes in a file
// `.buildfs-times` of the directory itself (and the xattr says "file"), so an
// `ostree checkout` never has to set an xattr larger than a filesystem holds.
// A mount hides both. Thread-safe (pure functions).
#pragma once

#include <sys/stat.h>
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

struct EntryRecord {
  struct timespec mtime {};
  struct timespec atime {};
  uint64_t ino = 0;  // 0: none recorded
  // Files: what stat shows, so no object is opened for it (when has_attr).
  bool has_attr = false;
  bool has_xattrs = false;  // with has_attr: the file has visible xattrs
  uint32_t mode = 0;        // type and permission bits, special files as what they are
  uint32_t uid = 0, gid = 0;
  uint64_t size = 0;
  uint64_t rdev = 0;

  bool operator==(const EntryRecord& o) const {
    return mtime.tv_sec == o.mtime.tv_sec && mtime.tv_nsec == o.mtime.tv_nsec &&
           atime.tv_sec == o.atime.tv_sec && atime.tv_nsec == o.atime.tv_nsec && ino == o.ino &&
           has_attr == o.has_attr && has_xattrs == o.has_xattrs && mode == o.mode && uid == o.uid &&
           gid == o.gid && size == o.size && rdev == o.rdev;
  }
};

// The record of an entry that stat shows as `st` (times, and for a
// non-directory its attributes); no inode number.
EntryRecord RecordFor(const struct stat& st, bool has_xattrs);

// Record 0 is the directory itself, then one per file in the dirtree's order
// (the times file, when there is one, excluded).
using EntryTable = std::vector<EntryRecord>;

// A compact binary form: a version byte, the count, then per record a flags
// varint, the mtime seconds as a zigzag delta from the record before, the
// nanoseconds, the atime only when it differs from the mtime, the inode
// number only when there is one, and the attributes when recorded (mode,
// uid, gid, size, and the device number of a device).
std::string EncodeEntries(const EntryTable& table);
// EUCLEAN when `data` is not a table this version wrote.
Result<EntryTable> DecodeEntries(std::string_view data);

}  // namespace buildfs

// Extended attributes of a directory entry, read without following symlinks.
//
// Every call names the entry as (directory fd, name) and goes through
// /proc/self/fd/N/NAME with the l*xattr calls, so symlinks (which cannot be
// opened) work too and nothing outside the directory is ever reached.
#pragma once

#include <sys/stat.h>

#include <string>
#include <utility>
#include <vector>

#include "fs/common/status.h"

namespace buildfs {

// A name/value pair of an extended attribute.
using Xattr = std::pair<std::string, std::string>;
using Xattrs = std::vector<Xattr>;

// All xattrs of the entry, sorted by name.
Result<Xattrs> ReadXattrsAt(int dir_fd, const std::string& name);
Result<std::string> GetXattrAt(int dir_fd, const std::string& name, const std::string& key);
Status SetXattrAt(int dir_fd, const std::string& name, const std::string& key,
                  const std::string& value, int flags = 0);
Status RemoveXattrAt(int dir_fd, const std::string& name, const std::string& key);
// The /proc/self/fd path of (dir_fd, name).
std::string ProcPath(int dir_fd, const std::string& name);

// Gives the entry `name` in `dir_fd` the xattrs, owner, mode and times
// (atime, mtime) of `st`: what copy-up and export keep. The owner comes
// before the mode (chown clears set-id bits); without root, a refused chown
// (EPERM) is not an error.
Status SetMetadataAt(int dir_fd, const std::string& name, const struct stat& st, const Xattrs& xattrs);

}  // namespace buildfs

namespace buildfs {

// Names buildfs keeps for itself: the overlay's markers (trusted.overlay.*,
// trusted.buildfs.*) and the repo's special-file marker (user.buildfs.*).
// They are never shown in a build, never settable from it, and never committed.
bool IsInternalXattr(const std::string& key);

}  // namespace buildfs

// Builddisks: ext4 images in the workspace's shared cache, cache/disks/NAME.img,
// which every build sees at cache/disks/ and writes privately (DESIGN.md,
// "Builddisks"). An image is made without root or loop devices (mke2fs -d)
// and published by writing a new file beside the old one and renaming it
// into place: builds that have the old one open keep reading it, and no
// shared file is ever written in place.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fs/common/progress.h"
#include "fs/common/status.h"
#include "fs/store/workspace.h"

namespace buildfs {

// The shared image of disk `disk`: WS/cache/disks/DISK.img.
std::string DiskPath(const Workspace& ws, const std::string& disk);
// Disk names follow the rules of build names.
Status ValidateDiskName(const std::string& disk);

// What fills a new image.
struct DiskSource {
  enum Kind { kBuildTree, kBuildResult, kDirectory } kind = kBuildTree;
  std::string build;  // kBuildTree, kBuildResult: the build whose tree (or result/) it is
  std::string dir;    // kDirectory
};

// Makes cache/disks/DISK.img, an ext4 filesystem of `size` bytes holding the
// source's tree (owners, modes, times, xattrs, special files). EEXIST when
// the image exists; nothing is left behind on failure or cancel.
Status CreateDisk(const Workspace& ws, const std::string& disk, uint64_t size,
                  const DiskSource& source, const Progress& progress = {});

struct DiskInfo {
  std::string name;
  bool shared = false;  // cache/disks/NAME.img exists
  uint64_t shared_size = 0;
  // The build's own version, in its private layers (when a build was named).
  bool private_copy = false;
  bool deleted = false;        // the build deleted its cache/disks/NAME.img
  uint64_t size = 0;           // the size the build sees
  uint64_t private_bytes = 0;  // disk space its private copies take
};

// The images of the shared cache and, with `build`, those the build has its
// own version of; sorted by name.
Result<std::vector<DiskInfo>> ListDisks(const Workspace& ws, const std::string& build);

// Publishes the build's version of disk `disk` into the shared cache: a new
// file beside cache/disks/DISK.img, renamed over it. ENOENT when the build
// has no version of its own (nothing to publish).
Status PutDisk(const Workspace& ws, const std::string& build, const std::string& disk,
               const Progress& progress = {});

}  // namespace buildfs

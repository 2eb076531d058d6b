// The on-disk format of an upper (and of a frozen) layer. This is the one
// place it is defined; it is the format of Linux overlayfs, so an upper can be
// inspected with ls/getfattr (and even mounted by overlayfs for comparison):
//
//   whiteout      a character device 0/0 with the deleted entry's name:
//                 the name is deleted in the merged tree (`ls -l` shows "c 0, 0")
//   opaque dir    a directory with xattr trusted.overlay.opaque = "y":
//                 nothing below it shows through
//   redirect      a directory with xattr trusted.overlay.redirect = "/PATH":
//                 a renamed directory; the layers below are read at PATH
//   inode number  xattr trusted.buildfs.ino = decimal number, set at copy-up,
//                 so an entry keeps its inode number when it moves up a layer
//   linked        xattr trusted.buildfs.linked = "y" on a file given a second
//                 name in the upper: below the upper its names are files of
//                 their own (Overlay::InoFor). Only these links are names:
//                 a link in .buildfs-bases/ pins a base, it names nothing
//   chunked file  a sparse file with xattr trusted.buildfs.chunks, the map of
//                 the chunks of a big file the layer holds, and
//                 trusted.buildfs.base, the name of what it reads the other
//                 chunks from in .buildfs-bases/ at the layer's root
//                 (chunked_file.h)
//
// Work files (copy-up in progress, orphans) live in the build's work/ directory
// beside upper/, on the same filesystem, and are renamed into place, so a crash
// never leaves a half-written entry in the upper.
#pragma once

#include <cstdint>
#include <string>

#include "fs/common/status.h"

namespace buildfs {

inline constexpr char kOpaqueXattr[] = "trusted.overlay.opaque";
inline constexpr char kRedirectXattr[] = "trusted.overlay.redirect";
inline constexpr char kInoXattr[] = "trusted.buildfs.ino";
inline constexpr char kLinkedXattr[] = "trusted.buildfs.linked";

// Creates a whiteout `name` in `dir_fd`.
Status MakeWhiteout(int dir_fd, const std::string& name);
Status SetOpaque(int dir_fd, const std::string& name);
// `lower_path` is relative ("a/b"); it is stored absolute ("/a/b").
Status SetRedirect(int dir_fd, const std::string& name, const std::string& lower_path);
Status SetIno(int dir_fd, const std::string& name, uint64_t ino);
Status SetLinked(int dir_fd, const std::string& name);

}  // namespace buildfs

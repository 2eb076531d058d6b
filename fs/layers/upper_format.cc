#include "fs/layers/upper_format.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "fs/common/xattr.h"

namespace buildfs {

Status MakeWhiteout(int dir_fd, const std::string& name) {
  if (mknodat(dir_fd, name.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0) {
    return Status::FromErrno(name + ": whiteout");
  }
  return Status::Ok();
}

Status SetOpaque(int dir_fd, const std::string& name) {
  return SetXattrAt(dir_fd, name, kOpaqueXattr, "y");
}

Status SetRedirect(int dir_fd, const std::string& name, const std::string& lower_path) {
  return SetXattrAt(dir_fd, name, kRedirectXattr, "/" + lower_path);
}

Status SetIno(int dir_fd, const std::string& name, uint64_t ino) {
  return SetXattrAt(dir_fd, name, kInoXattr, std::to_string(ino));
}

Status SetLinked(int dir_fd, const std::string& name) {
  return SetXattrAt(dir_fd, name, kLinkedXattr, "y");
}

}  // namespace buildfs

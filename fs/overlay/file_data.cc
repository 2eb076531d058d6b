// File data: reads, writes, fallocate, fsync and copy_file_range of open
// files. The stack-switch guard (switch_mu_, shared) is taken here around
// every write, so the frozen layer a switch makes never changes; a handle
// whose node moved since it was opened (copy-up, switch) reopens under mu_.
#include <fcntl.h>
#include <unistd.h>

#include "fs/overlay/overlay.h"

namespace buildfs {

Result<int> Overlay::ReadFd(FileHandle* fh) {
  if (fh->moved->load() == fh->generation) return fh->fd.load();
  return Reopen(fh, /*switch_held=*/false);
}

Result<int> Overlay::WriteFd(FileHandle* fh) {
  if (!fh->writable) return Status::Error(EBADF, "not open for writing");
  if (fh->moved->load() == fh->generation) return fh->fd.load();
  return Reopen(fh, /*switch_held=*/true);
}

Result<int> Overlay::Reopen(FileHandle* fh, bool switch_held) {
  std::lock_guard lock(mu_);
  BUILDFS_ASSIGN_OR_RETURN(Node * node, Get(fh->ino));
  // A writer's data comes up without mu_ when no stack switch can intervene.
  if (fh->writable && switch_held) BUILDFS_RETURN_IF_ERROR(CopyUpData(*node));
  BUILDFS_ASSIGN_OR_RETURN(UniqueFd fd, OpenNode(*node, fh->writable ? O_RDWR : O_RDONLY, fh->writable));
  fh->fd = fd.get();
  fh->fds.push_back(std::move(fd));
  fh->generation = node->generation.load();
  return fh->fd.load();
}

Result<Overlay::ReadSource> Overlay::ReadAt(FileHandle* fh, off_t off) {
  BUILDFS_ASSIGN_OR_RETURN(int fd, ReadFd(fh));
  return ReadSource{fd, off};
}

Result<size_t> Overlay::WriteAt(FileHandle* fh, off_t off, const CopyInto& copy) {
  std::shared_lock guard(switch_mu_);
  BUILDFS_ASSIGN_OR_RETURN(int fd, WriteFd(fh));
  ssize_t n = copy(fd, off);
  if (n < 0) return Status::Error(static_cast<int>(-n), "write");
  return static_cast<size_t>(n);
}

Status Overlay::Fallocate(FileHandle* fh, int mode, off_t off, off_t len) {
  std::shared_lock guard(switch_mu_);
  BUILDFS_ASSIGN_OR_RETURN(int fd, WriteFd(fh));
  if (fallocate(fd, mode, off, len) != 0) return Status::FromErrno("fallocate");
  return Status::Ok();
}

Status Overlay::Fsync(FileHandle* fh, bool datasync) {
  BUILDFS_ASSIGN_OR_RETURN(int fd, ReadFd(fh));
  if ((datasync ? fdatasync(fd) : fsync(fd)) != 0) return Status::FromErrno("fsync");
  return Status::Ok();
}

Result<size_t> Overlay::CopyRange(FileHandle* in, off_t in_off, FileHandle* out, off_t out_off, size_t len) {
  std::shared_lock guard(switch_mu_);
  BUILDFS_ASSIGN_OR_RETURN(int from, ReadFd(in));
  BUILDFS_ASSIGN_OR_RETURN(int to, WriteFd(out));
  ssize_t n = copy_file_range(from, &in_off, to, &out_off, len, 0);
  if (n < 0) return Status::FromErrno("copy_file_range");
  return static_cast<size_t>(n);
}

}  // namespace buildfs

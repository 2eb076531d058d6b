// File data: reads, writes, fallocate, fsync and copy_file_range of open
// files. The tree lock is taken shared around every write, so the frozen
// layer a stack switch makes never changes; a handle whose node moved since
// it was opened (copy-up, switch) reopens first, and a writer whose node is
// not in the upper copies it up with no lock held (CopyUpData).
#include <fcntl.h>
#include <unistd.h>

#include "fs/overlay/overlay.h"

namespace buildfs {

Result<int> Overlay::ReadFd(FileHandle* fh) {
  if (fh->moved->load() == fh->generation) return fh->fd.load();
  std::shared_lock tree(tree_mu_);
  return Reopen(fh);
}

Result<int> Overlay::WriteFd(FileHandle* fh) {
  if (!fh->writable) return Status::Error(EBADF, "not open for writing");
  if (fh->moved->load() == fh->generation) return fh->fd.load();
  return Reopen(fh);
}

Result<int> Overlay::Reopen(FileHandle* fh) {
  BUILDFS_ASSIGN_OR_RETURN(LockedNode node, LockNode(fh->ino, false));
  BUILDFS_ASSIGN_OR_RETURN(View view, ViewNow(node.pin.get()));
  BUILDFS_ASSIGN_OR_RETURN(UniqueFd fd, OpenView(view, fh->writable ? O_RDWR : O_RDONLY));
  std::lock_guard lock(mu_);
  fh->fd = fd.get();
  fh->fds.push_back(std::move(fd));
  fh->generation = view.generation;
  return fh->fd.load();
}

template <typename Op>
auto Overlay::WithWriteFd(FileHandle* fh, Op op) -> decltype(op(0)) {
  for (int attempt = 0;; ++attempt) {
    {
      std::shared_lock tree(tree_mu_);
      auto fd = WriteFd(fh);
      if (fd.ok()) return op(fd.value());
      if (fd.status().code() != EAGAIN) return fd.status();
      if (attempt >= 2) {
        // Copied up and moved again each time (stack switches in a row):
        // copy it up under the lock this once.
        BUILDFS_RETURN_IF_ERROR(CopyUp(fh->ino));
        continue;
      }
    }
    // The node is not in the upper (a stack switch froze it): its data
    // comes up with no lock held, then the write goes on.
    BUILDFS_RETURN_IF_ERROR(CopyUpData(fh->ino));
  }
}

Status Overlay::ReadAt(FileHandle* fh, off_t off, size_t size, std::vector<Segment>* out) {
  BUILDFS_ASSIGN_OR_RETURN(int fd, ReadFd(fh));
  out->push_back({fd, off, size});
  return Status::Ok();
}

Result<std::shared_ptr<const FileContent>> Overlay::Content(FileHandle* fh) {
  BUILDFS_ASSIGN_OR_RETURN(int fd, ReadFd(fh));
  return std::shared_ptr<const FileContent>(std::make_shared<PlainContent>(fd));
}

Result<size_t> Overlay::WriteAt(FileHandle* fh, off_t off, const CopyInto& copy) {
  return WithWriteFd(fh, [&](int fd) -> Result<size_t> {
    ssize_t n = copy(fd, off);
    if (n < 0) return Status::Error(static_cast<int>(-n), "write");
    return static_cast<size_t>(n);
  });
}

Status Overlay::Fallocate(FileHandle* fh, int mode, off_t off, off_t len) {
  return WithWriteFd(fh, [&](int fd) -> Status {
    if (fallocate(fd, mode, off, len) != 0) return Status::FromErrno("fallocate");
    return Status::Ok();
  });
}

Status Overlay::Fsync(FileHandle* fh, bool datasync) {
  BUILDFS_ASSIGN_OR_RETURN(int fd, ReadFd(fh));
  if ((datasync ? fdatasync(fd) : fsync(fd)) != 0) return Status::FromErrno("fsync");
  return Status::Ok();
}

Result<size_t> Overlay::CopyRange(FileHandle* in, off_t in_off, FileHandle* out, off_t out_off,
                                  size_t len) {
  BUILDFS_ASSIGN_OR_RETURN(int from, ReadFd(in));
  return WithWriteFd(out, [&](int to) -> Result<size_t> {
    ssize_t n = copy_file_range(from, &in_off, to, &out_off, len, 0);
    if (n < 0) return Status::FromErrno("copy_file_range");
    return static_cast<size_t>(n);
  });
}

}  // namespace buildfs

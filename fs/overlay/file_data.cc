// File data: reads, writes, fallocate, fsync and copy_file_range of open
// files. The tree lock is taken shared around every write, so the frozen
// layer a stack switch makes never changes; a handle whose node moved since
// it was opened (copy-up, switch) reopens first, and a writer whose node is
// not in the upper copies it up with no lock held (CopyUpData). A chunked
// file's bytes are where its map says (ReadAt gives the segments); a write
// into it first copies up the chunks it touches (ChunkedFile::PrepareWrite).
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
  BUILDFS_ASSIGN_OR_RETURN(auto chunked, ChunkedOf(node.pin.get(), view, fd.get()));
  std::lock_guard lock(mu_);
  SetChunked(fh, std::move(chunked));
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

void Overlay::SetChunked(FileHandle* fh, std::shared_ptr<ChunkedFile> file) {
  fh->chunked = file.get();
  if (file) fh->chunked_files.push_back(std::move(file));
}

Result<std::shared_ptr<ChunkedFile>> Overlay::ChunkedOf(Node* node, const View& view, int fd) {
  if (!S_ISREG(view.type)) return std::shared_ptr<ChunkedFile>();
  const bool upper = view.in_upper || view.orphan;
  if (!upper && (view.lower.empty() || !layers_[view.lower.front().layer].overlay_format)) {
    return std::shared_ptr<ChunkedFile>();  // only upper and frozen layers hold chunked files
  }
  Layer& layer = *layers_[upper ? 0 : view.lower.front().layer].layer;
  if (!layer.HasBases() || !ChunkedFile::IsChunked(fd)) {
    return std::shared_ptr<ChunkedFile>();
  }
  {
    std::lock_guard lock(mu_);
    auto known = node->chunked.lock();
    if (known && node->chunked_generation == view.generation) return known;
  }
  // Its own fd, for writing in the upper: the handle's may be read-only.
  const std::string proc = "/proc/self/fd/" + std::to_string(fd);
  UniqueFd own(open(proc.c_str(), (upper ? O_RDWR : O_RDONLY) | O_CLOEXEC));
  if (!own.valid()) return Status::FromErrno("opening a chunked file");
  BUILDFS_ASSIGN_OR_RETURN(UniqueFd bases, layer.OpenBases());
  BUILDFS_ASSIGN_OR_RETURN(auto file, OpenChunkedFile(std::move(own), bases.get()));
  std::lock_guard lock(mu_);
  auto known = node->chunked.lock();
  if (known && node->chunked_generation == view.generation) return known;  // made meanwhile
  node->chunked = file;
  node->chunked_generation = view.generation;
  return file;
}

Status Overlay::ReadAt(FileHandle* fh, off_t off, size_t size, std::vector<Segment>* out) {
  BUILDFS_ASSIGN_OR_RETURN(int fd, ReadFd(fh));
  if (ChunkedFile* chunked = fh->chunked.load()) return chunked->Segments(off, size, out);
  out->push_back({fd, off, size});
  return Status::Ok();
}

Result<std::shared_ptr<const FileContent>> Overlay::Content(FileHandle* fh) {
  BUILDFS_ASSIGN_OR_RETURN(int fd, ReadFd(fh));
  {
    std::lock_guard lock(mu_);
    for (const auto& file : fh->chunked_files) {
      if (file.get() == fh->chunked.load()) return std::shared_ptr<const FileContent>(file);
    }
  }
  return std::shared_ptr<const FileContent>(std::make_shared<PlainContent>(fd));
}

Result<size_t> Overlay::WriteAt(FileHandle* fh, off_t off, size_t len, const CopyInto& copy) {
  return WithWriteFd(fh, [&](int fd) -> Result<size_t> {
    if (ChunkedFile* chunked = fh->chunked.load()) {
      BUILDFS_RETURN_IF_ERROR(chunked->PrepareWrite(static_cast<uint64_t>(off), len));
    }
    ssize_t n = copy(fd, off);
    if (n < 0) return Status::Error(static_cast<int>(-n), "write");
    return static_cast<size_t>(n);
  });
}

Status Overlay::Fallocate(FileHandle* fh, int mode, off_t off, off_t len) {
  return WithWriteFd(fh, [&](int fd) -> Status {
    if (ChunkedFile* chunked = fh->chunked.load()) {
      return chunked->Fallocate(mode, static_cast<uint64_t>(off), static_cast<uint64_t>(len));
    }
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
  ChunkedFile* source = in->chunked.load();
  return WithWriteFd(out, [&](int to) -> Result<size_t> {
    ChunkedFile* dest = out->chunked.load();
    if (!source && !dest) {
      ssize_t n = copy_file_range(from, &in_off, to, &out_off, len, 0);
      if (n < 0) return Status::FromErrno("copy_file_range");
      return static_cast<size_t>(n);
    }
    // Chunked on either side: range by range, where the bytes are.
    std::vector<Segment> segments;
    if (source) {
      BUILDFS_RETURN_IF_ERROR(source->Segments(static_cast<uint64_t>(in_off), len, &segments));
    } else {
      segments.push_back({from, in_off, len});
    }
    size_t total = 0;
    for (const Segment& s : segments) total += s.len;
    if (dest) BUILDFS_RETURN_IF_ERROR(dest->PrepareWrite(static_cast<uint64_t>(out_off), total));
    size_t done = 0;
    for (const Segment& s : segments) {
      off_t at = s.offset;
      ssize_t n = copy_file_range(s.fd, &at, to, &out_off, s.len, 0);
      if (n < 0) {
        if (done > 0) break;
        return Status::FromErrno("copy_file_range");
      }
      done += static_cast<size_t>(n);
      if (static_cast<size_t>(n) < s.len) break;
    }
    return done;
  });
}

}  // namespace buildfs

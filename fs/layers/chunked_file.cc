#include "fs/layers/chunked_file.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "fs/common/path.h"

namespace buildfs {
namespace {

constexpr char kMagic[4] = {'B', 'F', 'C', 'K'};
constexpr size_t kHeader = 16;
constexpr uint64_t kMaxChunks = 16384;  // a 2 KiB bitmap

uint64_t FileSize(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

}  // namespace

Result<UniqueFd> MaterializeContent(const FileContent& content, const std::string& dir) {
  UniqueFd fd(open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (!fd.valid()) return Status::FromErrno(dir + ": temporary file");
  BUILDFS_RETURN_IF_ERROR(CopyContent(content, fd.get()));
  return fd;
}

uint8_t ChunkMap::ShiftFor(uint64_t size) {
  uint8_t shift = 22;
  while ((size >> shift) >= kMaxChunks) ++shift;
  return shift;
}

void ChunkMap::Shrink(uint64_t size) {
  if (size >= base_size) return;
  base_size = size;
  bits.resize((chunks() + 7) / 8);
  if (chunks() % 8 != 0) bits.back() &= static_cast<uint8_t>((1u << (chunks() % 8)) - 1);
}

std::string ChunkMap::Encode() const {
  std::string out(kMagic, sizeof(kMagic));
  out += static_cast<char>(1);
  out += static_cast<char>(shift);
  out += std::string(2, '\0');
  for (int i = 0; i < 8; ++i) out += static_cast<char>((base_size >> (8 * i)) & 0xff);
  out.append(reinterpret_cast<const char*>(bits.data()), bits.size());
  return out;
}

Result<ChunkMap> ChunkMap::Decode(std::string_view data) {
  auto damaged = [](const char* why) {
    return Status::Error(EIO, std::string("damaged chunk map: ") + why);
  };
  if (data.size() < kHeader || std::memcmp(data.data(), kMagic, sizeof(kMagic)) != 0) {
    return damaged("no header");
  }
  if (data[4] != 1) return damaged("unknown version");
  ChunkMap map;
  map.shift = static_cast<uint8_t>(data[5]);
  if (map.shift < 12 || map.shift > 40) return damaged("chunk size out of range");
  for (int i = 0; i < 8; ++i) {
    map.base_size |= uint64_t{static_cast<uint8_t>(data[8 + i])} << (8 * i);
  }
  if (data.size() - kHeader != (map.chunks() + 7) / 8) return damaged("bitmap of the wrong length");
  map.bits.assign(data.begin() + kHeader, data.end());
  return map;
}

uint64_t PlainContent::size() const { return size_ != kUnknownSize ? size_ : FileSize(fd_); }

Status PlainContent::Segments(uint64_t off, uint64_t len, std::vector<Segment>* out) const {
  if (size_ != kUnknownSize) {
    if (off >= size_) return Status::Ok();
    len = std::min(len, size_ - off);
  }
  out->push_back({fd_, static_cast<off_t>(off), static_cast<size_t>(len)});
  return Status::Ok();
}

Result<std::string> ReadAll(const FileContent& content) {
  const uint64_t size = content.size();
  std::vector<Segment> segments;
  BUILDFS_RETURN_IF_ERROR(content.Segments(0, size, &segments));
  std::string out(size, '\0');
  uint64_t at = 0;
  for (const Segment& s : segments) {
    for (size_t done = 0; done < s.len && at + done < size;) {
      ssize_t n =
          pread(s.fd, out.data() + at + done, std::min<uint64_t>(s.len - done, size - at - done),
                s.offset + static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::FromErrno("reading");
      if (n == 0) break;  // the file ends here
      done += static_cast<size_t>(n);
    }
    at += s.len;
  }
  return out;
}

Status CopyContent(const FileContent& content, int to) {
  const uint64_t size = content.size();
  std::vector<Segment> segments;
  BUILDFS_RETURN_IF_ERROR(content.Segments(0, size, &segments));
  uint64_t at = 0;
  for (const Segment& s : segments) {
    const uint64_t len = std::min<uint64_t>(s.len, size - at);
    BUILDFS_RETURN_IF_ERROR(CopyDataRange(s.fd, s.offset, to, static_cast<off_t>(at), len));
    at += len;
  }
  if (ftruncate(to, static_cast<off_t>(size)) != 0) return Status::FromErrno("copying");
  return Status::Ok();
}

Status ChunkedFile::Create(int upper_fd, const FileContent& base, uint8_t shift) {
  ChunkMap map;
  map.shift = shift != 0 ? shift : ChunkMap::ShiftFor(base.size());
  map.base_size = base.size();
  map.bits.assign((map.chunks() + 7) / 8, 0);
  if (ftruncate(upper_fd, static_cast<off_t>(base.size())) != 0)
    return Status::FromErrno("chunked copy");
  const std::string encoded = map.Encode();
  if (fsetxattr(upper_fd, kChunksXattr, encoded.data(), encoded.size(), 0) != 0) {
    return Status::FromErrno("chunked copy: chunk map");
  }
  return Status::Ok();
}

bool ChunkedFile::IsChunked(int fd) { return fgetxattr(fd, kChunksXattr, nullptr, 0) >= 0; }

Result<std::unique_ptr<ChunkedFile>> ChunkedFile::Open(UniqueFd upper_fd,
                                                       std::shared_ptr<const FileContent> base) {
  BUILDFS_ASSIGN_OR_RETURN(auto file, Open(upper_fd.get(), std::move(base)));
  file->owned_ = std::move(upper_fd);
  return file;
}

Result<std::unique_ptr<ChunkedFile>> ChunkedFile::Open(int upper_fd,
                                                       std::shared_ptr<const FileContent> base) {
  ssize_t n = fgetxattr(upper_fd, kChunksXattr, nullptr, 0);
  if (n < 0) return Status::FromErrno("chunk map");
  std::string data(static_cast<size_t>(n), '\0');
  n = fgetxattr(upper_fd, kChunksXattr, data.data(), data.size());
  if (n < 0) return Status::FromErrno("chunk map");
  data.resize(static_cast<size_t>(n));
  BUILDFS_ASSIGN_OR_RETURN(ChunkMap map, ChunkMap::Decode(data));
  if (map.base_size > base->size())
    return Status::Error(EIO, "chunk map: the base is shorter than the map");
  std::unique_ptr<ChunkedFile> file(new ChunkedFile(upper_fd, std::move(base), std::move(map)));
  // The kernel's readahead of a sparse file reads on into the chunks it
  // does not hold (zeros, filled and thrown away): off for the upper, which
  // Segments prefetches a chunk at a time instead.
  posix_fadvise(upper_fd, 0, 0, POSIX_FADV_RANDOM);
  // A truncate cuts the upper first, then the map: a daemon killed between
  // the two left the map larger than the file.
  const uint64_t size = FileSize(upper_fd);
  if (size < file->map_.base_size) {
    file->map_.Shrink(size);
    BUILDFS_RETURN_IF_ERROR(file->WriteMap());
  }
  return file;
}

uint64_t ChunkedFile::size() const { return FileSize(upper_); }

Status ChunkedFile::Segments(uint64_t off, uint64_t len, std::vector<Segment>* out) const {
  std::shared_lock lock(mu_);
  const uint64_t size = FileSize(upper_);
  if (off >= size) return Status::Ok();
  const uint64_t end = off + std::min(len, size - off);
  auto add_upper = [&](uint64_t from, uint64_t to) {
    if (!out->empty() && out->back().fd == upper_ &&
        static_cast<uint64_t>(out->back().offset) + out->back().len == from) {
      out->back().len += static_cast<size_t>(to - from);
    } else {
      out->push_back({upper_, static_cast<off_t>(from), static_cast<size_t>(to - from)});
    }
  };
  for (uint64_t pos = off; pos < end;) {
    if (pos >= map_.base_size) {
      add_upper(pos, end);
      break;
    }
    // The run of chunks from here on that come from the same place.
    const bool up = map_.Has(pos >> map_.shift);
    uint64_t next = ((pos >> map_.shift) + 1) << map_.shift;
    while (next < std::min(end, map_.base_size) && map_.Has(next >> map_.shift) == up) {
      next += map_.chunk_size();
    }
    const uint64_t to = std::min({next, end, map_.base_size});
    if (up) {
      if ((pos & (map_.chunk_size() - 1)) == 0) {  // a reader enters the chunk: read it ahead
        const uint64_t stop = std::min(pos + map_.chunk_size(), map_.base_size);
        posix_fadvise(upper_, static_cast<off_t>(pos), static_cast<off_t>(stop - pos),
                      POSIX_FADV_WILLNEED);
      }
      add_upper(pos, to);
    } else {
      BUILDFS_RETURN_IF_ERROR(base_->Segments(pos, to - pos, out));
    }
    pos = to;
  }
  return Status::Ok();
}

Status ChunkedFile::WriteMap() {
  const std::string encoded = map_.Encode();
  if (fsetxattr(upper_, kChunksXattr, encoded.data(), encoded.size(), 0) != 0) {
    return Status::FromErrno("chunk map");
  }
  return Status::Ok();
}

Status ChunkedFile::CopyChunk(uint64_t c) {
  const uint64_t start = c << map_.shift;
  const uint64_t len = std::min(map_.chunk_size(), map_.base_size - start);
  std::vector<Segment> from;
  BUILDFS_RETURN_IF_ERROR(base_->Segments(start, len, &from));
  uint64_t at = start;
  for (const Segment& s : from) {
    BUILDFS_RETURN_IF_ERROR(CopyDataRange(s.fd, s.offset, upper_, static_cast<off_t>(at), s.len));
    at += s.len;
  }
  if (at != start + len)
    return Status::Error(EIO, "copying a chunk: the base is shorter than its map says");
  // Only now is the chunk the upper's: a copy cut short reads as the base.
  map_.Set(c);
  Status written = WriteMap();
  if (!written.ok()) map_.bits[c / 8] &= static_cast<uint8_t>(~(1u << (c % 8)));
  return written;
}

Status ChunkedFile::PrepareWrite(uint64_t off, uint64_t len) {
  if (len == 0) return Status::Ok();
  auto missing = [&] {
    for (uint64_t c = off >> map_.shift; c <= (off + len - 1) >> map_.shift && c < map_.chunks();
         ++c) {
      if (!map_.Has(c)) return true;
    }
    return false;
  };
  {
    std::shared_lock lock(mu_);
    if (!missing()) return Status::Ok();
  }
  std::unique_lock lock(mu_);
  for (uint64_t c = off >> map_.shift; c <= (off + len - 1) >> map_.shift && c < map_.chunks();
       ++c) {
    if (!map_.Has(c)) BUILDFS_RETURN_IF_ERROR(CopyChunk(c));
  }
  return Status::Ok();
}

Status ChunkedFile::Truncate(uint64_t size) {
  std::unique_lock lock(mu_);
  if (ftruncate(upper_, static_cast<off_t>(size)) != 0) return Status::FromErrno("truncate");
  if (size >= map_.base_size) return Status::Ok();
  map_.Shrink(size);
  return WriteMap();
}

Status ChunkedFile::Fallocate(int mode, uint64_t off, uint64_t len) {
  if (mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE)) {
    return Status::Error(EOPNOTSUPP, "fallocate: collapse or insert range of a chunked file");
  }
  const bool zeroes = mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE);
  if (!zeroes || len == 0) {
    // Allocation changes no byte: the upper's business alone.
    if (fallocate(upper_, mode, static_cast<off_t>(off), static_cast<off_t>(len)) != 0) {
      return Status::FromErrno("fallocate");
    }
    return Status::Ok();
  }
  std::unique_lock lock(mu_);
  const uint64_t end = off + len;
  // Chunks the range covers in part keep their other bytes: copied first.
  // Chunks it covers whole (within the file) become zeros: recorded after.
  std::vector<uint64_t> whole;
  for (uint64_t c = off >> map_.shift; c < map_.chunks() && (c << map_.shift) < end; ++c) {
    if (map_.Has(c)) continue;
    const uint64_t start = c << map_.shift;
    const uint64_t stop = std::min(start + map_.chunk_size(), map_.base_size);
    if (off <= start && stop <= end) {
      whole.push_back(c);
    } else {
      BUILDFS_RETURN_IF_ERROR(CopyChunk(c));
    }
  }
  if (fallocate(upper_, mode, static_cast<off_t>(off), static_cast<off_t>(len)) != 0) {
    return Status::FromErrno("fallocate");
  }
  if (whole.empty()) return Status::Ok();
  for (uint64_t c : whole) map_.Set(c);
  return WriteMap();
}

namespace {

Result<std::string> GetXattr(int fd, const char* name) {
  char buf[256];
  ssize_t n = fgetxattr(fd, name, buf, sizeof(buf));
  if (n < 0) return Status::FromErrno(name);
  return std::string(buf, static_cast<size_t>(n));
}

// The name a base has in a bases directory.
Result<std::string> BaseName(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return Status::FromErrno("base");
  char name[64];
  snprintf(name, sizeof(name), "%lx-%lx", static_cast<unsigned long>(st.st_dev),
           static_cast<unsigned long>(st.st_ino));
  return std::string(name);
}

Result<UniqueFd> OpenBase(int bases_dir, int fd) {
  BUILDFS_ASSIGN_OR_RETURN(std::string name, GetXattr(fd, kBaseXattr));
  if (bases_dir < 0) return Status::Error(EIO, "chunked file: its layer keeps no bases");
  if (name.empty() || name.find('/') != std::string::npos || name[0] == '.') {
    return Status::Error(EIO, "chunked file: a damaged base name");
  }
  UniqueFd base(openat(bases_dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!base.valid()) return Status::FromErrno(std::string("chunked file: its base ") + name);
  return base;
}

// Hard-links the file at `fd` and its chain of bases into `to_bases`;
// returns its name there.
Result<std::string> PinBase(int fd, int from_bases, int to_bases) {
  BUILDFS_ASSIGN_OR_RETURN(std::string name, BaseName(fd));
  const std::string proc = "/proc/self/fd/" + std::to_string(fd);
  if (linkat(AT_FDCWD, proc.c_str(), to_bases, name.c_str(), AT_SYMLINK_FOLLOW) != 0 &&
      errno != EEXIST) {
    return Status::FromErrno("pinning a base");
  }
  // Its own chain is pinned every time: a pin cut short by a kill has the
  // file without the rest.
  if (ChunkedFile::IsChunked(fd)) {
    BUILDFS_ASSIGN_OR_RETURN(UniqueFd next, OpenBase(from_bases, fd));
    BUILDFS_RETURN_IF_ERROR(PinBase(next.get(), from_bases, to_bases).status());
  }
  return name;
}

}  // namespace

Result<std::shared_ptr<ChunkedFile>> OpenChunkedFile(UniqueFd fd, int bases_dir) {
  BUILDFS_ASSIGN_OR_RETURN(UniqueFd base_fd, OpenBase(bases_dir, fd.get()));
  BUILDFS_ASSIGN_OR_RETURN(auto base, OpenFileContent(std::move(base_fd), bases_dir));
  BUILDFS_ASSIGN_OR_RETURN(auto file, ChunkedFile::Open(std::move(fd), std::move(base)));
  return std::shared_ptr<ChunkedFile>(std::move(file));
}

Result<std::shared_ptr<const FileContent>> OpenFileContent(UniqueFd fd, int bases_dir) {
  if (!ChunkedFile::IsChunked(fd.get())) {
    return std::shared_ptr<const FileContent>(std::make_shared<PlainContent>(std::move(fd)));
  }
  BUILDFS_ASSIGN_OR_RETURN(auto file, OpenChunkedFile(std::move(fd), bases_dir));
  return std::shared_ptr<const FileContent>(std::move(file));
}

Status MakeChunkedCopy(int upper_fd, int base_fd, int from_bases, int to_bases, uint8_t shift) {
  BUILDFS_ASSIGN_OR_RETURN(std::string name, PinBase(base_fd, from_bases, to_bases));
  UniqueFd again(fcntl(base_fd, F_DUPFD_CLOEXEC, 0));
  if (!again.valid()) return Status::FromErrno("chunked copy");
  BUILDFS_ASSIGN_OR_RETURN(auto base, OpenFileContent(std::move(again), from_bases));
  BUILDFS_RETURN_IF_ERROR(ChunkedFile::Create(upper_fd, *base, shift));
  if (fsetxattr(upper_fd, kBaseXattr, name.data(), name.size(), 0) != 0) {
    return Status::FromErrno("chunked copy: its base");
  }
  return Status::Ok();
}

ChunkMap ChunkedFile::map() const {
  std::shared_lock lock(mu_);
  return map_;
}

}  // namespace buildfs

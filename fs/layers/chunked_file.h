// Chunked files: the private copy of a big file (a disk image) that holds
// only the chunks a build wrote. DESIGN.md, "Big files".
//
// On disk, a chunked file is a sparse file in the upper (its size is the
// file's size) with xattr trusted.buildfs.chunks, the chunk map:
//
//   "BFCK" | version (1 byte, 1) | chunk shift (1 byte) | 2 zero bytes |
//   base size (8 bytes, little-endian) | bitmap, one bit per chunk of the
//   base (bit c of byte c/8, least significant first)
//
// Byte `off` of the file is the upper's byte when off >= base size or its
// chunk's bit is set, and the base's byte otherwise. The base is another
// file that never changes (the file as it was below when it was copied up;
// itself plain or chunked). The base size only shrinks (a truncate below it),
// so the bytes past it read as the upper holds them: zeros, or what was
// written since.
//
// A chunk is copied whole from the base into the upper before its first
// write, and its bit is set only after the copy: a daemon killed in between
// leaves the bit clear, and the chunk reads as its old content. A write into
// a chunk already present goes to the upper in place, as to any file; an
// fsync of the upper makes the data and the map durable together.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "fs/common/fd.h"
#include "fs/common/status.h"

namespace buildfs {

inline constexpr char kChunksXattr[] = "trusted.buildfs.chunks";
// The name of a chunked file's base in its layer's bases directory.
inline constexpr char kBaseXattr[] = "trusted.buildfs.base";
// The bases directory, at the root of an upper or frozen layer: a hard link
// to every file a chunked file of the layer reads from (the whole chain: a
// base may be chunked itself), named "DEV-INO" in hex. It pins them: a base
// replaced or deleted where it was (`disk put`, a prune of its commit, a
// commit folding its layer) lives on here. Hidden from the merged tree.
inline constexpr char kBasesDir[] = ".buildfs-bases";
// Regular files of at least this size are copied up chunked.
inline constexpr uint64_t kChunkedCopyMin = uint64_t{64} << 20;

// The chunk map, as stored in kChunksXattr.
struct ChunkMap {
  // 4 MiB chunks, larger for files over 64 GiB so that the map stays under
  // 2 KiB (one xattr of a 4 KiB block holds it).
  static uint8_t ShiftFor(uint64_t size);

  uint8_t shift = 22;
  uint64_t base_size = 0;
  std::vector<uint8_t> bits;  // ceil(chunks() / 8) bytes

  uint64_t chunk_size() const { return uint64_t{1} << shift; }
  uint64_t chunks() const { return (base_size + chunk_size() - 1) >> shift; }
  bool Has(uint64_t chunk) const { return (bits[chunk / 8] >> (chunk % 8)) & 1; }
  void Set(uint64_t chunk) { bits[chunk / 8] |= static_cast<uint8_t>(1u << (chunk % 8)); }
  // Lowers the base size to `size` (never raises it).
  void Shrink(uint64_t size);
  // Whether byte `off` is the upper's.
  bool InUpper(uint64_t off) const { return off >= base_size || Has(off >> shift); }

  std::string Encode() const;
  static Result<ChunkMap> Decode(std::string_view data);
};

// A part of a file's bytes: `len` bytes at `offset` of `fd`.
struct Segment {
  int fd;
  off_t offset;
  size_t len;
};

// The bytes of a file, for readers: where each range of it is.
class FileContent {
 public:
  virtual ~FileContent() = default;
  virtual uint64_t size() const = 0;
  // Appends the segments holding [off, off + len), clipped to the size (a
  // plain file's one segment may reach past its end: reads stop there).
  virtual Status Segments(uint64_t off, uint64_t len, std::vector<Segment>* out) const = 0;
  // The fd holding every byte at its own offset, when there is one.
  virtual int plain_fd() const { return -1; }
};

// A plain file: one fd, one segment. Does not own the fd. Without a size,
// size() asks the file.
class PlainContent : public FileContent {
 public:
  static constexpr uint64_t kUnknownSize = ~uint64_t{0};
  explicit PlainContent(int fd, uint64_t size = kUnknownSize) : fd_(fd), size_(size) {}
  // Keeps `fd` open as long as it lives.
  explicit PlainContent(UniqueFd fd) : fd_(fd.get()), size_(kUnknownSize), owned_(std::move(fd)) {}
  uint64_t size() const override;
  Status Segments(uint64_t off, uint64_t len, std::vector<Segment>* out) const override;
  int plain_fd() const override { return fd_; }

 private:
  int fd_;
  uint64_t size_;
  UniqueFd owned_;
};

// Every byte of `content`.
Result<std::string> ReadAll(const FileContent& content);
// Writes every byte of `content` to `to` at the same offsets (which must be
// empty: ranges the content holds as holes stay holes where they can).
Status CopyContent(const FileContent& content, int to);
// `content` as one file (unnamed, in `dir`), for a reader that needs an fd.
Result<UniqueFd> MaterializeContent(const FileContent& content, const std::string& dir);

// A chunked file open for reading and writing. Thread-safe: one object per
// file, shared by everyone who uses it (the map is read and changed in memory
// and written through to the xattr). Does not own the upper fd, which must
// stay open (O_RDWR) while the object lives; the base is shared.
class ChunkedFile : public FileContent {
 public:
  // Makes `upper_fd` (an empty regular file) the chunked copy of `base`:
  // its size, and a map with no chunk present. `shift`: the chunk size's
  // log2 (0: ChunkMap::ShiftFor the base's size; tests use small chunks).
  static Status Create(int upper_fd, const FileContent& base, uint8_t shift = 0);
  // Opens a chunked file made by Create. Repairs a map a killed daemon left
  // larger than the file (a truncate between its two steps).
  static Result<std::unique_ptr<ChunkedFile>> Open(int upper_fd,
                                                   std::shared_ptr<const FileContent> base);
  // The same, keeping `upper_fd` open as long as it lives.
  static Result<std::unique_ptr<ChunkedFile>> Open(UniqueFd upper_fd,
                                                   std::shared_ptr<const FileContent> base);
  // Whether the file at `fd` is chunked (carries a chunk map).
  static bool IsChunked(int fd);

  uint64_t size() const override;
  Status Segments(uint64_t off, uint64_t len, std::vector<Segment>* out) const override;

  // Before a write of [off, off + len) to the upper fd: copies the chunks
  // of the base it touches that the upper lacks, and records them.
  Status PrepareWrite(uint64_t off, uint64_t len);
  // Sets the size (ftruncate of the upper): bytes cut off are gone, bytes
  // added read as zeros.
  Status Truncate(uint64_t size);
  // fallocate of the upper with the base's bytes kept right: ranges that
  // change content (punch hole, zero range, collapse or insert range) are
  // prepared first, chunks they cover whole are recorded without a copy.
  Status Fallocate(int mode, uint64_t off, uint64_t len);
  // The map as it is now (for tests and `disk list`).
  ChunkMap map() const;

 private:
  ChunkedFile(int upper_fd, std::shared_ptr<const FileContent> base, ChunkMap map)
      : upper_(upper_fd), base_(std::move(base)), map_(std::move(map)) {}
  // Copies chunk `c` from the base and records it. REQUIRES: mu_ exclusive.
  Status CopyChunk(uint64_t c);
  Status WriteMap();  // REQUIRES: mu_ exclusive

  int upper_;
  UniqueFd owned_;  // upper_, when the object keeps it
  std::shared_ptr<const FileContent> base_;
  mutable std::shared_mutex mu_;  // guards map_
  ChunkMap map_;
};

// The bytes of the file at `fd`, which they keep open: the file itself when
// it is plain; when it is chunked, a ChunkedFile over its chain of bases,
// opened in `bases_dir` (the bases directory of the file's layer; -1: none).
// A chunked file's upper fd must be open for writing to write through it.
Result<std::shared_ptr<const FileContent>> OpenFileContent(UniqueFd fd, int bases_dir);
// The same for a file that is chunked.
Result<std::shared_ptr<ChunkedFile>> OpenChunkedFile(UniqueFd fd, int bases_dir);

// Makes the empty file `upper_fd` (in a layer whose bases directory is
// `to_bases`) the chunked copy of the file at `base_fd` (whose layer's bases
// directory is `from_bases`, -1: none): pins the base and its chain in
// `to_bases`, then writes the chunk map and the base's name. EXDEV: the base
// is on another filesystem (copy it whole instead); nothing is pinned then.
// `shift`: as for ChunkedFile::Create.
Status MakeChunkedCopy(int upper_fd, int base_fd, int from_bases, int to_bases, uint8_t shift = 0);

}  // namespace buildfs

#include "fs/store/entry_table.h"

namespace buildfs {
namespace {

constexpr uint8_t kVersion = 1;
constexpr uint64_t kHasAtime = 1;  // the atime differs from the mtime
constexpr uint64_t kHasIno = 2;
constexpr uint64_t kHasAttr = 4;
constexpr uint64_t kHasXattrs = 8;
constexpr uint64_t kHasRdev = 16;

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

uint64_t ZigZag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }
int64_t UnZigZag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) return false;
      uint8_t b = static_cast<uint8_t>(data_[pos_++]);
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }
  bool Byte(uint8_t* b) {
    if (pos_ >= data_.size()) return false;
    *b = static_cast<uint8_t>(data_[pos_++]);
    return true;
  }
  bool done() const { return pos_ == data_.size(); }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

}  // namespace

EntryRecord RecordFor(const struct stat& st, bool has_xattrs) {
  EntryRecord r;
  r.mtime = st.st_mtim;
  r.atime = st.st_atim;
  if (S_ISDIR(st.st_mode)) return r;  // its dirmeta says the rest
  r.has_attr = true;
  r.has_xattrs = has_xattrs;
  r.mode = st.st_mode;
  r.uid = st.st_uid;
  r.gid = st.st_gid;
  r.size = S_ISREG(st.st_mode) || S_ISLNK(st.st_mode) ? static_cast<uint64_t>(st.st_size) : 0;
  r.rdev = S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? st.st_rdev : 0;
  return r;
}

std::string EncodeEntries(const EntryTable& table) {
  std::string out;
  out.push_back(static_cast<char>(kVersion));
  PutVarint(&out, table.size());
  int64_t prev = 0;
  for (const auto& e : table) {
    const bool atime = e.atime.tv_sec != e.mtime.tv_sec || e.atime.tv_nsec != e.mtime.tv_nsec;
    PutVarint(&out, (atime ? kHasAtime : 0) | (e.ino ? kHasIno : 0) | (e.has_attr ? kHasAttr : 0) |
                        (e.has_attr && e.has_xattrs ? kHasXattrs : 0) | (e.has_attr && e.rdev ? kHasRdev : 0));
    PutVarint(&out, ZigZag(static_cast<int64_t>(e.mtime.tv_sec) - prev));
    PutVarint(&out, static_cast<uint64_t>(e.mtime.tv_nsec));
    prev = e.mtime.tv_sec;
    if (atime) {
      PutVarint(&out, ZigZag(static_cast<int64_t>(e.atime.tv_sec) - e.mtime.tv_sec));
      PutVarint(&out, static_cast<uint64_t>(e.atime.tv_nsec));
    }
    if (e.ino) PutVarint(&out, e.ino);
    if (e.has_attr) {
      PutVarint(&out, e.mode);
      PutVarint(&out, e.uid);
      PutVarint(&out, e.gid);
      PutVarint(&out, e.size);
      if (e.rdev) PutVarint(&out, e.rdev);
    }
  }
  return out;
}

Result<EntryTable> DecodeEntries(std::string_view data) {
  auto bad = [] { return Status::Error(EUCLEAN, "damaged times table"); };
  Reader in(data);
  uint8_t version = 0;
  uint64_t count = 0;
  if (!in.Byte(&version) || version != kVersion || !in.Varint(&count) || count > data.size()) return bad();
  EntryTable table(count);
  int64_t prev = 0;
  for (auto& e : table) {
    uint64_t flags, sec, nsec;
    if (!in.Varint(&flags) || !in.Varint(&sec) || !in.Varint(&nsec) || nsec >= 1000000000) return bad();
    e.mtime.tv_sec = static_cast<time_t>(prev + UnZigZag(sec));
    e.mtime.tv_nsec = static_cast<long>(nsec);
    prev = e.mtime.tv_sec;
    e.atime = e.mtime;
    if (flags & kHasAtime) {
      if (!in.Varint(&sec) || !in.Varint(&nsec) || nsec >= 1000000000) return bad();
      e.atime.tv_sec = static_cast<time_t>(e.mtime.tv_sec + UnZigZag(sec));
      e.atime.tv_nsec = static_cast<long>(nsec);
    }
    if ((flags & kHasIno) && !in.Varint(&e.ino)) return bad();
    if (flags & kHasAttr) {
      uint64_t mode, uid, gid;
      if (!in.Varint(&mode) || !in.Varint(&uid) || !in.Varint(&gid) || !in.Varint(&e.size)) return bad();
      if ((flags & kHasRdev) && !in.Varint(&e.rdev)) return bad();
      e.has_attr = true;
      e.has_xattrs = flags & kHasXattrs;
      e.mode = static_cast<uint32_t>(mode);
      e.uid = static_cast<uint32_t>(uid);
      e.gid = static_cast<uint32_t>(gid);
    }
  }
  if (!in.done()) return bad();
  return table;
}

}  // namespace buildfs

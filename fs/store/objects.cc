#include "fs/store/objects.h"

#include <fcntl.h>
#include <glib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>

#include "fs/common/path.h"

namespace buildfs {
namespace {

std::string ToHex(const guint8* data, gsize len) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (gsize i = 0; i < len; ++i) {
    out += kDigits[data[i] >> 4];
    out += kDigits[data[i] & 15];
  }
  return out;
}

std::string ChecksumOf(GVariant* bytes) {
  gsize len = 0;
  auto* data = static_cast<const guint8*>(g_variant_get_fixed_array(bytes, &len, 1));
  return len == 32 ? ToHex(data, len) : std::string();
}

// Wraps serialized bytes in a GVariant of `type`; the caller unrefs.
GVariant* VariantFrom(const std::string& data, const char* type) {
  GBytes* bytes = g_bytes_new(data.data(), data.size());
  GVariant* v = g_variant_new_from_bytes(G_VARIANT_TYPE(type), bytes, FALSE);
  g_bytes_unref(bytes);
  return g_variant_ref_sink(v);
}

struct VariantUnref {
  void operator()(GVariant* v) const { g_variant_unref(v); }
};
using VariantPtr = std::unique_ptr<GVariant, VariantUnref>;

Xattrs ParseXattrs(GVariant* array) {
  Xattrs out;
  gsize n = g_variant_n_children(array);
  for (gsize i = 0; i < n; ++i) {
    VariantPtr pair(g_variant_get_child_value(array, i));
    VariantPtr name(g_variant_get_child_value(pair.get(), 0));
    VariantPtr value(g_variant_get_child_value(pair.get(), 1));
    gsize name_len = 0, value_len = 0;
    auto* name_data = static_cast<const char*>(g_variant_get_fixed_array(name.get(), &name_len, 1));
    auto* value_data =
        static_cast<const char*>(g_variant_get_fixed_array(value.get(), &value_len, 1));
    std::string key(name_data, name_len);
    while (!key.empty() && key.back() == '\0') key.pop_back();  // stored with its NUL
    out.emplace_back(std::move(key), std::string(value_data, value_len));
  }
  return out;
}

bool IsChecksum(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

std::string EncodeSpecial(mode_t mode, dev_t rdev) {
  if (S_ISFIFO(mode)) return "fifo";
  if (S_ISSOCK(mode)) return "socket";
  const char* kind = S_ISCHR(mode) ? "chr" : "blk";
  return std::string(kind) + " " + std::to_string(major(rdev)) + " " + std::to_string(minor(rdev));
}

bool DecodeSpecial(const std::string& value, mode_t* mode, dev_t* rdev) {
  *rdev = 0;
  mode_t perms = *mode & 07777;
  if (value == "fifo") {
    *mode = S_IFIFO | perms;
    return true;
  }
  if (value == "socket") {
    *mode = S_IFSOCK | perms;
    return true;
  }
  char kind[4] = {};
  unsigned maj = 0, min = 0;
  if (std::sscanf(value.c_str(), "%3s %u %u", kind, &maj, &min) == 3) {
    std::string k = kind;
    if (k == "chr" || k == "blk") {
      *mode = (k == "chr" ? S_IFCHR : S_IFBLK) | perms;
      *rdev = makedev(maj, min);
      return true;
    }
  }
  return false;
}

Result<ObjectMeta> ParseObjectMeta(const std::string& data) {
  VariantPtr v(VariantFrom(data, "(uuua(ayay))"));
  guint32 uid = 0, gid = 0, mode = 0;
  GVariant* xattrs = nullptr;
  g_variant_get(v.get(), "(uuu@a(ayay))", &uid, &gid, &mode, &xattrs);
  VariantPtr xattrs_holder(xattrs);
  ObjectMeta meta;
  meta.uid = GUINT32_FROM_BE(uid);
  meta.gid = GUINT32_FROM_BE(gid);
  meta.mode = GUINT32_FROM_BE(mode);
  meta.xattrs = ParseXattrs(xattrs);
  return meta;
}

std::string ObjectReader::ObjectPath(const std::string& checksum, const char* ext) {
  return checksum.substr(0, 2) + "/" + checksum.substr(2) + "." + ext;
}

Result<ObjectReader> ObjectReader::Open(const std::string& repo_path) {
  UniqueFd fd(open((repo_path + "/objects").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(repo_path + "/objects");
  return ObjectReader(std::move(fd));
}

Result<std::string> ObjectReader::ReadObject(const std::string& checksum, const char* ext) const {
  if (!IsChecksum(checksum)) return Status::Error(EINVAL, "bad checksum '" + checksum + "'");
  std::string rel = ObjectPath(checksum, ext);
  UniqueFd fd(openat(objects_.get(), rel.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno("object " + checksum + "." + ext);
  std::string out;
  char buf[16384];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("object " + checksum);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Result<DirTree> ObjectReader::LoadDirTree(const std::string& checksum) const {
  BUILDFS_ASSIGN_OR_RETURN(std::string data, ReadObject(checksum, "dirtree"));
  VariantPtr v(VariantFrom(data, "(a(say)a(sayay))"));
  VariantPtr files(g_variant_get_child_value(v.get(), 0));
  VariantPtr dirs(g_variant_get_child_value(v.get(), 1));
  DirTree tree;
  gsize nf = g_variant_n_children(files.get());
  tree.files.reserve(nf);
  for (gsize i = 0; i < nf; ++i) {
    const char* name = nullptr;
    GVariant* csum = nullptr;
    g_variant_get_child(files.get(), i, "(&s@ay)", &name, &csum);
    VariantPtr holder(csum);
    tree.files.push_back({name, ChecksumOf(csum)});
  }
  gsize nd = g_variant_n_children(dirs.get());
  tree.dirs.reserve(nd);
  for (gsize i = 0; i < nd; ++i) {
    const char* name = nullptr;
    GVariant* t = nullptr;
    GVariant* m = nullptr;
    g_variant_get_child(dirs.get(), i, "(&s@ay@ay)", &name, &t, &m);
    VariantPtr th(t), mh(m);
    tree.dirs.push_back({name, ChecksumOf(t), ChecksumOf(m)});
  }
  return tree;
}

Result<ObjectMeta> ObjectReader::LoadDirMeta(const std::string& checksum) const {
  BUILDFS_ASSIGN_OR_RETURN(std::string data, ReadObject(checksum, "dirmeta"));
  return ParseObjectMeta(data);
}

Result<CommitInfo> ObjectReader::LoadCommit(const std::string& checksum) const {
  BUILDFS_ASSIGN_OR_RETURN(std::string data, ReadObject(checksum, "commit"));
  VariantPtr v(VariantFrom(data, "(a{sv}aya(say)sstayay)"));
  CommitInfo info;
  VariantPtr parent(g_variant_get_child_value(v.get(), 1));
  info.parent = ChecksumOf(parent.get());
  VariantPtr subject(g_variant_get_child_value(v.get(), 3));
  info.subject = g_variant_get_string(subject.get(), nullptr);
  VariantPtr ts(g_variant_get_child_value(v.get(), 5));
  info.timestamp = GUINT64_FROM_BE(g_variant_get_uint64(ts.get()));
  VariantPtr tree(g_variant_get_child_value(v.get(), 6));
  VariantPtr meta(g_variant_get_child_value(v.get(), 7));
  info.root_tree = ChecksumOf(tree.get());
  info.root_meta = ChecksumOf(meta.get());
  if (info.root_tree.empty() || info.root_meta.empty()) {
    return Status::Error(EIO, "commit " + checksum + ": malformed");
  }
  return info;
}

Result<UniqueFd> ObjectReader::OpenFile(const std::string& checksum, int flags) const {
  if (!IsChecksum(checksum)) return Status::Error(EINVAL, "bad checksum '" + checksum + "'");
  std::string rel = ObjectPath(checksum, "file");
  UniqueFd fd(openat(objects_.get(), rel.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | flags));
  if (!fd.valid()) return Status::FromErrno("object " + checksum + ".file");
  return fd;
}

Result<FileObject> ObjectReader::StatFile(const std::string& checksum) const {
  BUILDFS_ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(checksum));
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return Status::FromErrno("object " + checksum);
  char buf[8192];
  ssize_t n = fgetxattr(fd.get(), "user.ostreemeta", buf, sizeof(buf));
  std::string meta_data;
  if (n < 0 && errno == ERANGE) {
    ssize_t size = fgetxattr(fd.get(), "user.ostreemeta", nullptr, 0);
    if (size < 0) return Status::FromErrno("object " + checksum + ": user.ostreemeta");
    meta_data.resize(static_cast<size_t>(size));
    n = fgetxattr(fd.get(), "user.ostreemeta", meta_data.data(), meta_data.size());
    if (n < 0) return Status::FromErrno("object " + checksum + ": user.ostreemeta");
    meta_data.resize(static_cast<size_t>(n));
  } else if (n < 0) {
    return Status::FromErrno("object " + checksum + ": user.ostreemeta");
  } else {
    meta_data.assign(buf, static_cast<size_t>(n));
  }
  BUILDFS_ASSIGN_OR_RETURN(ObjectMeta meta, ParseObjectMeta(meta_data));
  FileObject obj;
  obj.meta = std::move(meta);
  obj.size = static_cast<uint64_t>(st.st_size);
  if (S_ISLNK(obj.meta.mode)) {
    // A bare-user symlink is a file holding the target and a NUL.
    std::string target(static_cast<size_t>(st.st_size), '\0');
    ssize_t got = pread(fd.get(), target.data(), target.size(), 0);
    if (got < 0) return Status::FromErrno("object " + checksum);
    target.resize(static_cast<size_t>(got));
    while (!target.empty() && target.back() == '\0') target.pop_back();
    obj.size = target.size();
    obj.symlink_target = std::move(target);
  }
  return obj;
}

}  // namespace buildfs

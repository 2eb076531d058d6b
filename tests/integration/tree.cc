// Building, copying, reading and comparing trees for the integration tests.
#include "tests/integration/tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>
#include <sstream>

#include "fs/common/fd.h"
#include "tests/integration/throw_errno.h"

namespace buildfs::testing {
namespace {

std::map<std::string, std::string> ReadUserXattrs(const std::string& path,
                                                  std::vector<std::string>* problems) {
  std::map<std::string, std::string> attrs;
  ssize_t len = llistxattr(path.c_str(), nullptr, 0);
  if (len < 0) {
    if (errno != ENOTSUP) problems->push_back("llistxattr " + path + ": " + strerror(errno));
    return attrs;
  }
  std::string names(static_cast<size_t>(len) + 1024, '\0');
  len = llistxattr(path.c_str(), names.data(), names.size());
  if (len < 0) {
    problems->push_back("llistxattr " + path + ": " + strerror(errno));
    return attrs;
  }
  names.resize(static_cast<size_t>(len));
  for (size_t start = 0; start < names.size();) {
    size_t end = names.find('\0', start);
    if (end == std::string::npos) end = names.size();
    std::string name = names.substr(start, end - start);
    start = end + 1;
    if (name.rfind("user.", 0) != 0) continue;
    // buildfs's own markers, which checkouts of its commits carry and its
    // mounts never show (times tables, special files).
    if (name.rfind("user.buildfs.", 0) == 0) continue;
    if (attrs.count(name)) problems->push_back("llistxattr " + path + " lists " + name + " twice");
    std::string value(65536, '\0');
    ssize_t vlen = lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
    if (vlen < 0) {
      problems->push_back("lgetxattr " + path + " " + name + ": " + strerror(errno));
      continue;
    }
    value.resize(static_cast<size_t>(vlen));
    attrs[name] = value;
  }
  return attrs;
}

unsigned char DtypeOf(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return DT_REG;
    case S_IFDIR:
      return DT_DIR;
    case S_IFLNK:
      return DT_LNK;
    case S_IFIFO:
      return DT_FIFO;
    case S_IFCHR:
      return DT_CHR;
    case S_IFBLK:
      return DT_BLK;
    case S_IFSOCK:
      return DT_SOCK;
  }
  return DT_UNKNOWN;
}

void ScanDir(const std::string& root, const std::string& rel, const ScanOptions& options,
             Snapshot* snap) {
  const std::string dir = rel.empty() ? root : root + "/" + rel;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    snap->problems.push_back("opendir " + (rel.empty() ? "/" : rel) + ": " + strerror(errno));
    return;
  }
  std::vector<std::pair<std::string, unsigned char>> listed;
  errno = 0;
  while (dirent* e = readdir(d)) {
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
      listed.emplace_back(e->d_name, e->d_type);
    errno = 0;
  }
  if (errno != 0) snap->problems.push_back("readdir " + dir + ": " + strerror(errno));
  closedir(d);
  std::sort(listed.begin(), listed.end());
  for (size_t i = 0; i < listed.size(); ++i) {
    const auto& [name, dtype] = listed[i];
    const std::string child = rel.empty() ? name : rel + "/" + name;
    if (i > 0 && listed[i - 1].first == name) {
      snap->problems.push_back("readdir lists " + child + " more than once");
      continue;
    }
    if (rel.empty() && options.ignore_top.count(name)) continue;
    const std::string path = root + "/" + child;
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) {
      snap->problems.push_back("readdir lists " + child + " but lstat fails: " + strerror(errno));
      continue;
    }
    if (dtype != DT_UNKNOWN && dtype != DtypeOf(st.st_mode)) {
      snap->problems.push_back("readdir d_type of " + child + " is " + std::to_string(dtype) +
                               ", lstat says " + std::to_string(DtypeOf(st.st_mode)));
    }
    Entry e;
    e.mode = st.st_mode;
    e.uid = st.st_uid;
    e.gid = st.st_gid;
    e.size = st.st_size;
    e.nlink = st.st_nlink;
    e.ino = st.st_ino;
    if (S_ISREG(st.st_mode)) {
      UniqueFd fd(open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
      if (!fd.valid()) {
        snap->problems.push_back("open " + child + ": " + strerror(errno));
      } else {
        char buf[65536];
        for (;;) {
          ssize_t n = read(fd.get(), buf, sizeof buf);
          if (n < 0 && errno == EINTR) continue;
          if (n < 0) snap->problems.push_back("read " + child + ": " + strerror(errno));
          if (n <= 0) break;
          e.data.append(buf, static_cast<size_t>(n));
        }
      }
    } else if (S_ISLNK(st.st_mode)) {
      std::string target(4096, '\0');
      ssize_t n = readlink(path.c_str(), target.data(), target.size());
      if (n < 0) {
        snap->problems.push_back("readlink " + child + ": " + strerror(errno));
      } else {
        target.resize(static_cast<size_t>(n));
        e.data = target;
      }
    }
    e.xattrs = ReadUserXattrs(path, &snap->problems);
    snap->entries[child] = std::move(e);
    if (S_ISDIR(st.st_mode)) ScanDir(root, child, options, snap);
  }
}

std::string Octal(mode_t mode) {
  char buf[16];
  snprintf(buf, sizeof buf, "0%o", mode);
  return buf;
}

const char* TypeName(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return "file";
    case S_IFDIR:
      return "dir";
    case S_IFLNK:
      return "symlink";
    case S_IFIFO:
      return "fifo";
    default:
      return "special";
  }
}

std::string Quote(const std::string& s) {
  std::string r = "\"";
  for (unsigned char c : s.substr(0, 40)) {
    if (c >= 32 && c < 127 && c != '"' && c != '\\') {
      r.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      snprintf(buf, sizeof buf, "\\x%02x", c);
      r += buf;
    }
  }
  r += s.size() > 40 ? "\"..." : "\"";
  return r;
}

std::string DescribeContentDiff(const std::string& want, const std::string& got) {
  size_t i = 0;
  while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
  std::ostringstream os;
  os << "content differs at offset " << i << " (expected " << want.size() << " bytes, got "
     << got.size() << ")";
  if (i < want.size() || i < got.size()) {
    os << ": expected " << Quote(want.substr(std::min(i, want.size()))) << ", got "
       << Quote(got.substr(std::min(i, got.size())));
  }
  return os.str();
}

void CopyXattrs(const std::string& from, const std::string& to) {
  std::vector<std::string> problems;
  for (const auto& [name, value] : ReadUserXattrs(from, &problems)) {
    if (lsetxattr(to.c_str(), name.c_str(), value.data(), value.size(), 0) != 0)
      ThrowErrno("lsetxattr", to);
  }
  if (!problems.empty()) throw std::runtime_error(problems.front());
}

void CopyTreeRec(const std::string& from, const std::string& to,
                 std::map<ino_t, std::string>* links) {
  struct stat st = Lstat(from);
  if (S_ISDIR(st.st_mode)) {
    if (mkdir(to.c_str(), 0700) != 0) ThrowErrno("mkdir", to);
    auto names = ListDir(from);
    std::sort(names.begin(), names.end());
    for (const auto& name : names) CopyTreeRec(from + "/" + name, to + "/" + name, links);
  } else if (S_ISREG(st.st_mode)) {
    if (st.st_nlink > 1) {
      auto it = links->find(st.st_ino);
      if (it != links->end()) {
        if (link(it->second.c_str(), to.c_str()) != 0) ThrowErrno("link", to);
        return;
      }
      (*links)[st.st_ino] = to;
    }
    WriteFile(to, ReadFile(from), 0600);
  } else if (S_ISLNK(st.st_mode)) {
    std::string target(4096, '\0');
    ssize_t n = readlink(from.c_str(), target.data(), target.size());
    if (n < 0) ThrowErrno("readlink", from);
    target.resize(static_cast<size_t>(n));
    MakeSymlink(target, to);
    if (lchown(to.c_str(), st.st_uid, st.st_gid) != 0) ThrowErrno("lchown", to);
    return;
  } else if (S_ISFIFO(st.st_mode)) {
    if (mkfifo(to.c_str(), 0600) != 0) ThrowErrno("mkfifo", to);
  } else {
    throw std::runtime_error("CopyTree: unsupported file type at " + from);
  }
  CopyXattrs(from, to);
  // chown before chmod: chown clears set-user-ID bits.
  if (lchown(to.c_str(), st.st_uid, st.st_gid) != 0) ThrowErrno("lchown", to);
  if (chmod(to.c_str(), st.st_mode & 07777) != 0) ThrowErrno("chmod", to);
}

}  // namespace

void WriteFile(const std::string& path, std::string_view data, mode_t mode) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd.valid()) ThrowErrno("open", path);
  for (size_t done = 0; done < data.size();) {
    ssize_t n = write(fd.get(), data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      ThrowErrno("write", path);
    }
    done += static_cast<size_t>(n);
  }
  if (fchmod(fd.get(), mode) != 0) ThrowErrno("fchmod", path);
}

std::string ReadFile(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) ThrowErrno("open", path);
  std::string data;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      ThrowErrno("read", path);
    }
    if (n == 0) return data;
    data.append(buf, static_cast<size_t>(n));
  }
}

void MakeDir(const std::string& path, mode_t mode) {
  if (mkdir(path.c_str(), mode) != 0) ThrowErrno("mkdir", path);
  if (chmod(path.c_str(), mode) != 0) ThrowErrno("chmod", path);  // umask-proof
}

void MakeTree(const std::string& root, const std::vector<std::pair<std::string, std::string>>& entries) {
  MakeDir(root);
  for (const auto& [rel, data] : entries) {
    // Each directory on the way, once.
    for (size_t slash = rel.find('/'); slash != std::string::npos; slash = rel.find('/', slash + 1)) {
      const std::string dir = root + "/" + rel.substr(0, slash);
      struct stat st;
      if (lstat(dir.c_str(), &st) != 0) MakeDir(dir);
    }
    if (rel.empty() || rel.back() != '/') WriteFile(root + "/" + rel, data);
  }
}

void MakeSymlink(const std::string& target, const std::string& path) {
  if (symlink(target.c_str(), path.c_str()) != 0) ThrowErrno("symlink", path);
}

void SetXattr(const std::string& path, const std::string& name, std::string_view value) {
  if (lsetxattr(path.c_str(), name.c_str(), value.data(), value.size(), 0) != 0)
    ThrowErrno("setxattr", path);
}

struct stat Lstat(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) ThrowErrno("lstat", path);
  return st;
}

int LstatErrno(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0 ? 0 : errno;
}

std::vector<std::string> ListDir(const std::string& path) {
  DIR* d = opendir(path.c_str());
  if (d == nullptr) ThrowErrno("opendir", path);
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) names.push_back(e->d_name);
  }
  closedir(d);
  return names;
}

std::string RandomBytes(uint64_t seed, size_t n) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

void CopyTree(const std::string& from, const std::string& to) {
  std::map<ino_t, std::string> links;
  CopyTreeRec(from, to, &links);
}

// The sample tree: one of each kind of entry the contract promises to keep.
void MakeSampleTree(const std::string& root) {
  MakeDir(root, 0755);
  auto p = [&](std::string_view rel) { return root + "/" + std::string(rel); };
  WriteFile(p("hello.txt"), "hello world\n");
  WriteFile(p("copy-of-hello.txt"), "hello world\n");  // one OSTree object, two paths
  WriteFile(p("empty.txt"), "");
  WriteFile(p("big.bin"), RandomBytes(1, 300 * 1024));  // several FUSE reads
  MakeDir(p("bin"));
  WriteFile(p("bin/tool"), "#!/bin/sh\necho tool\n", 0755);
  MakeSymlink("hello.txt", p("link-to-hello"));
  MakeSymlink("does/not/exist", p("dangling-link"));
  MakeSymlink("sub", p("dir-link"));
  WriteFile(p("hard-a"), "shared by two names\n");
  if (link(p("hard-a").c_str(), p("hard-b").c_str()) != 0) ThrowErrno("link", p("hard-b"));
  MakeDir(p("emptydir"));
  WriteFile(p("attrs.txt"), "has xattrs\n");
  SetXattr(p("attrs.txt"), "user.color", "blue");
  SetXattr(p("attrs.txt"), "user.binary", std::string("a\0b\xff", 4));
  MakeDir(p("attrdir"));
  SetXattr(p("attrdir"), "user.kind", "directory");
  WriteFile(p("private.txt"), "root only\n", 0600);
  WriteFile(p("setuid-tool"), "#!/bin/sh\n", 04755);
  WriteFile(p("root-file.txt"), "owned by root\n", 0644);
  WriteFile(p("user-file.txt"), "owned by uid 1000\n", 0644);
  if (chown(p("user-file.txt").c_str(), 1000, 1000) != 0) ThrowErrno("chown", p("user-file.txt"));
  MakeDir(p("user-dir"));
  if (chown(p("user-dir").c_str(), 1000, 1000) != 0) ThrowErrno("chown", p("user-dir"));
  MakeDir(p("readonly-dir"));
  WriteFile(p("readonly-dir/inner.txt"), "inside a 0444 directory\n");
  MakeDir(p("exec-only-dir"));
  WriteFile(p("exec-only-dir/secret.txt"), "found by name only\n");
  MakeDir(p("sticky"));
  WriteFile(p("sticky/root-file.txt"), "root's file in a sticky dir\n");
  MakeDir(p("sub"));
  WriteFile(p("sub/file.txt"), "in sub\n");
  MakeDir(p("sub/deeper"));
  MakeDir(p("sub/deeper/deepest"));
  WriteFile(p("sub/deeper/deepest/leaf.txt"), "leaf\n");
  MakeSymlink("../../file.txt", p("sub/deeper/deepest/up-link"));
  MakeDir(p("many"));
  for (int i = 0; i < 150; ++i) {
    char name[32];
    snprintf(name, sizeof name, "many/f%03d", i);
    WriteFile(p(name), std::string(name) + "\n");
  }
  // Modes last: a 0444 directory takes no new entries from a non-root owner.
  MakeDir(p("mode-0711"), 0711);
  if (chmod(p("readonly-dir").c_str(), 0444) != 0) ThrowErrno("chmod", p("readonly-dir"));
  if (chmod(p("exec-only-dir").c_str(), 0711) != 0) ThrowErrno("chmod", p("exec-only-dir"));
  if (chmod(p("sticky").c_str(), 01777) != 0) ThrowErrno("chmod", p("sticky"));
}

void MakeRandomTree(const std::string& root, uint64_t seed, int dirs, int files) {
  std::mt19937_64 rng(seed);
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  MakeDir(root, 0755);
  std::vector<std::string> all_dirs{""};
  for (int i = 0; i < dirs; ++i) {
    std::string parent = all_dirs[pick(all_dirs.size())];
    std::string rel = (parent.empty() ? "" : parent + "/") + "d" + std::to_string(i);
    MakeDir(root + "/" + rel, i % 3 == 2 ? 0700 : 0755);
    all_dirs.push_back(rel);
  }
  static constexpr mode_t kModes[] = {0644, 0644, 0600, 0755, 0444, 0640};
  for (int i = 0; i < files; ++i) {
    std::string parent = all_dirs[pick(all_dirs.size())];
    std::string rel = (parent.empty() ? "" : parent + "/") + "f" + std::to_string(i);
    size_t size = pick(4) == 0 ? 0 : pick(16384);
    WriteFile(root + "/" + rel, RandomBytes(rng(), size), kModes[pick(std::size(kModes))]);
    if (pick(4) == 0)
      SetXattr(root + "/" + rel, "user.k" + std::to_string(pick(3)), "v" + std::to_string(i));
  }
  for (int i = 0; i < 3; ++i) {
    std::string parent = all_dirs[pick(all_dirs.size())];
    std::string rel = (parent.empty() ? "" : parent + "/") + "s" + std::to_string(i);
    MakeSymlink("f" + std::to_string(pick(static_cast<size_t>(files))), root + "/" + rel);
  }
}

Snapshot ScanTree(const std::string& root, const ScanOptions& options) {
  Snapshot snap;
  ScanDir(root, "", options, &snap);
  return snap;
}

std::string DiffSnapshots(const Snapshot& expected, const Snapshot& actual,
                          const CompareOptions& options) {
  std::vector<std::string> lines;
  for (const auto& p : expected.problems) lines.push_back("expected tree: " + p);
  for (const auto& p : actual.problems) lines.push_back(p);
  auto e = expected.entries.begin();
  auto a = actual.entries.begin();
  while (e != expected.entries.end() || a != actual.entries.end()) {
    if (a == actual.entries.end() || (e != expected.entries.end() && e->first < a->first)) {
      lines.push_back(e->first + ": missing (expected " + TypeName(e->second.mode) + ")");
      ++e;
      continue;
    }
    if (e == expected.entries.end() || a->first < e->first) {
      lines.push_back(a->first + ": unexpected " + TypeName(a->second.mode));
      ++a;
      continue;
    }
    const std::string& path = e->first;
    const Entry& x = e->second;
    const Entry& y = a->second;
    auto add = [&](const std::string& what) { lines.push_back(path + ": " + what); };
    if ((x.mode & S_IFMT) != (y.mode & S_IFMT)) {
      add(std::string("type ") + TypeName(y.mode) + ", expected " + TypeName(x.mode));
    } else {
      if ((x.mode & 07777) != (y.mode & 07777))
        add("mode " + Octal(y.mode & 07777) + ", expected " + Octal(x.mode & 07777));
      if (x.uid != y.uid || x.gid != y.gid) {
        add("owner " + std::to_string(y.uid) + ":" + std::to_string(y.gid) + ", expected " +
            std::to_string(x.uid) + ":" + std::to_string(x.gid));
      }
      if (!S_ISDIR(x.mode) && x.size != y.size)
        add("size " + std::to_string(y.size) + ", expected " + std::to_string(x.size));
      if (options.compare_nlink && !S_ISDIR(x.mode) && x.nlink != y.nlink) {
        add("nlink " + std::to_string(y.nlink) + ", expected " + std::to_string(x.nlink));
      }
      if (S_ISLNK(x.mode) && x.data != y.data)
        add("symlink target " + Quote(y.data) + ", expected " + Quote(x.data));
      if (S_ISREG(x.mode) && x.data != y.data) add(DescribeContentDiff(x.data, y.data));
      if (x.xattrs != y.xattrs) {
        for (const auto& [k, v] : x.xattrs) {
          auto it = y.xattrs.find(k);
          if (it == y.xattrs.end())
            add("xattr " + k + " missing");
          else if (it->second != v)
            add("xattr " + k + " = " + Quote(it->second) + ", expected " + Quote(v));
        }
        for (const auto& [k, v] : y.xattrs) {
          if (!x.xattrs.count(k)) add("unexpected xattr " + k + " = " + Quote(v));
        }
      }
    }
    ++e;
    ++a;
  }
  std::string out;
  const size_t kMaxLines = 40;
  for (size_t i = 0; i < lines.size() && i < kMaxLines; ++i) out += lines[i] + "\n";
  if (lines.size() > kMaxLines)
    out += "... and " + std::to_string(lines.size() - kMaxLines) + " more\n";
  return out;
}

std::string DiffTrees(const std::string& expected, const std::string& actual,
                      const ScanOptions& actual_scan, const CompareOptions& options) {
  return DiffSnapshots(ScanTree(expected), ScanTree(actual, actual_scan), options);
}

}  // namespace buildfs::testing

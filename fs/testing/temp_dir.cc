#include "fs/testing/temp_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace buildfs::testing {
namespace {

[[noreturn]] void Fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

// Removes `name` in `dir_fd` and everything below it, never following symlinks.
void RemoveAt(int dir_fd, const char* name) {
  struct stat st;
  if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
      DIR* d = fdopendir(fd);
      if (d) {
        std::vector<std::string> names;
        while (struct dirent* e = readdir(d)) {
          if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            names.push_back(e->d_name);
        }
        for (const auto& n : names) RemoveAt(dirfd(d), n.c_str());
        closedir(d);
      } else {
        close(fd);
      }
    }
    unlinkat(dir_fd, name, AT_REMOVEDIR);
  } else {
    unlinkat(dir_fd, name, 0);
  }
}

}  // namespace

TempDir::TempDir() {
  char tmpl[] = "/var/tmp/buildfs-test-XXXXXX";
  if (!mkdtemp(tmpl)) Fail("mkdtemp");
  path_ = tmpl;
}

TempDir::~TempDir() { RemoveAt(AT_FDCWD, path_.c_str()); }

std::string TempDir::Path(const std::string& rel) const { return path_ + "/" + rel; }

void WriteFile(const std::string& path, const std::string& content, mode_t mode) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) Fail(path);
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      close(fd);
      Fail(path);
    }
    done += static_cast<size_t>(n);
  }
  if (fchmod(fd, mode) != 0) {
    close(fd);
    Fail(path);
  }
  close(fd);
}

std::string ReadFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) Fail(path);
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0) {
      close(fd);
      Fail(path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

void MakeDirs(const std::string& path, mode_t mode) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    std::string prefix = path.substr(0, pos);
    if (mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) Fail(prefix);
  }
  if (chmod(path.c_str(), mode) != 0) Fail(path);
}

void MakeSymlink(const std::string& target, const std::string& path) {
  if (symlink(target.c_str(), path.c_str()) != 0) Fail(path);
}

void MakeWhiteoutNode(const std::string& path) {
  if (mknod(path.c_str(), S_IFCHR | 0000, makedev(0, 0)) != 0) Fail(path);
}

void SetXattr(const std::string& path, const std::string& key, const std::string& value) {
  if (lsetxattr(path.c_str(), key.c_str(), value.data(), value.size(), 0) != 0) {
    Fail(path + ": " + key);
  }
}

std::optional<std::string> GetXattr(const std::string& path, const std::string& key) {
  char buf[65536];
  ssize_t n = lgetxattr(path.c_str(), key.c_str(), buf, sizeof(buf));
  if (n < 0) {
    if (errno == ENODATA) return std::nullopt;
    Fail(path + ": " + key);
  }
  return std::string(buf, static_cast<size_t>(n));
}

struct stat Lstat(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) Fail(path);
  return st;
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

std::vector<std::string> ListDir(const std::string& path) {
  DIR* d = opendir(path.c_str());
  if (!d) Fail(path);
  std::vector<std::string> names;
  while (struct dirent* e = readdir(d)) {
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) names.push_back(e->d_name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

void MakeTree(const std::string& root,
              const std::vector<std::pair<std::string, std::string>>& entries) {
  MakeDirs(root);
  for (const auto& [name, content] : entries) {
    std::string path = root + "/" + name;
    if (!name.empty() && name.back() == '/') {
      path.pop_back();
      MakeDirs(path);
      continue;
    }
    size_t slash = path.rfind('/');
    MakeDirs(path.substr(0, slash));
    WriteFile(path, content);
  }
}

int RunProgram(const std::vector<std::string>& argv, std::string* output) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) Fail("pipe");
  pid_t pid = fork();
  if (pid < 0) Fail("fork");
  if (pid == 0) {
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, 0);
    dup2(pipefd[1], 1);
    dup2(pipefd[1], 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(pipefd[1]);
  output->clear();
  char buf[4096];
  for (;;) {
    ssize_t n = read(pipefd[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output->append(buf, static_cast<size_t>(n));
  }
  close(pipefd[0]);
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) Fail("waitpid");
  }
  if (WIFSIGNALED(wstatus)) return 128 + WTERMSIG(wstatus);
  return WEXITSTATUS(wstatus);
}

}  // namespace buildfs::testing

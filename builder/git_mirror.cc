#include "builder/git_mirror.h"

#include <git2.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <mutex>

#include "fs/common/fd.h"
#include "fs/common/path.h"
#include "fs/store/lock.h"

namespace buildfs {
namespace {

void InitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { git_libgit2_init(); });
}

Status GitError(const std::string& what) {
  const git_error* e = git_error_last();
  return Status::Error(EIO, what + ": " + (e && e->message ? e->message : "git error"));
}

template <typename T, void (*Free)(T*)>
struct GitFree {
  void operator()(T* p) const { Free(p); }
};
using RepoPtr = std::unique_ptr<git_repository, GitFree<git_repository, git_repository_free>>;
using RemotePtr = std::unique_ptr<git_remote, GitFree<git_remote, git_remote_free>>;
using ObjectPtr = std::unique_ptr<git_object, GitFree<git_object, git_object_free>>;
using RefPtr = std::unique_ptr<git_reference, GitFree<git_reference, git_reference_free>>;

Result<RepoPtr> OpenBare(const std::string& mirror) {
  InitOnce();
  git_repository* repo = nullptr;
  if (git_repository_open_bare(&repo, mirror.c_str()) != 0) return GitError(mirror);
  return RepoPtr(repo);
}

}  // namespace

std::string MirrorPath(const std::string& src_dir, const std::string& url) {
  std::string name;
  for (char c : url) name += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-') ? c : '_';
  while (!name.empty() && (name[0] == '_' || name[0] == '.')) name.erase(0, 1);
  if (name.size() > 120) name = name.substr(name.size() - 120);
  // Two URLs that differ only in their odd characters get two mirrors.
  char hash[17];
  snprintf(hash, sizeof(hash), "%016zx", std::hash<std::string>{}(url));
  return src_dir + "/" + name + "-" + std::string(hash, 8) + ".git";
}

Status UpdateMirror(const std::string& mirror, const std::string& url) {
  InitOnce();
  BUILDFS_ASSIGN_OR_RETURN(FileLock lock, FileLock::Wait(mirror + ".lock"));
  git_repository* raw = nullptr;
  struct stat st;
  if (stat(mirror.c_str(), &st) != 0) {
    // Made beside, then renamed: a killed first fetch leaves no half mirror.
    const std::string tmp = mirror + ".new";
    RemoveTree(tmp);
    if (git_repository_init(&raw, tmp.c_str(), /*is_bare=*/1) != 0) return GitError(tmp);
    RepoPtr repo(raw);
    git_remote* remote = nullptr;
    if (git_remote_create_with_fetchspec(&remote, repo.get(), "origin", url.c_str(), "+refs/*:refs/*") != 0) {
      return GitError(url);
    }
    RemotePtr owned(remote);
    repo.reset();
    if (rename(tmp.c_str(), mirror.c_str()) != 0) return Status::FromErrno(mirror);
  }
  BUILDFS_ASSIGN_OR_RETURN(RepoPtr repo, OpenBare(mirror));
  git_remote* remote = nullptr;
  if (git_remote_lookup(&remote, repo.get(), "origin") != 0) return GitError(mirror);
  RemotePtr owned(remote);
  git_fetch_options options = GIT_FETCH_OPTIONS_INIT;
  options.prune = GIT_FETCH_PRUNE;
  options.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_ALL;
  if (git_remote_fetch(remote, nullptr, &options, "buildfs resolve") != 0) {
    return GitError("fetching " + url);
  }
  return Status::Ok();
}

Result<std::string> ResolvePin(const std::string& mirror, const Component& c) {
  BUILDFS_ASSIGN_OR_RETURN(RepoPtr repo, OpenBare(mirror));
  std::string spec;
  switch (c.pin) {
    case Component::Pin::kBranch: spec = "refs/heads/" + c.ref; break;
    case Component::Pin::kTag: spec = "refs/tags/" + c.ref; break;
    case Component::Pin::kRevision: spec = c.ref; break;
  }
  git_object* obj = nullptr;
  if (git_revparse_single(&obj, repo.get(), (spec + "^{commit}").c_str()) != 0) {
    const char* kind = c.pin == Component::Pin::kBranch ? "branch"
                       : c.pin == Component::Pin::kTag  ? "tag"
                                                        : "revision";
    return Status::Error(ENOENT, "component " + c.name + ": " + c.src + " has no " + kind + " " + c.ref);
  }
  ObjectPtr owned(obj);
  char id[GIT_OID_HEXSZ + 1];
  git_oid_tostr(id, sizeof(id), git_object_id(obj));
  return std::string(id);
}

Status CheckoutCommit(const std::string& mirror, const std::string& commit, const std::string& dest) {
  BUILDFS_ASSIGN_OR_RETURN(RepoPtr repo, OpenBare(mirror));
  git_oid oid;
  if (git_oid_fromstr(&oid, commit.c_str()) != 0) return GitError(commit);
  git_object* obj = nullptr;
  if (git_object_lookup(&obj, repo.get(), &oid, GIT_OBJECT_COMMIT) != 0) return GitError(commit);
  ObjectPtr owned(obj);
  if (mkdir(dest.c_str(), 0755) != 0 && errno != EEXIST) return Status::FromErrno(dest);
  git_checkout_options options = GIT_CHECKOUT_OPTIONS_INIT;
  options.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_DONT_UPDATE_INDEX;
  options.target_directory = dest.c_str();
  if (git_checkout_tree(repo.get(), obj, &options) != 0) return GitError("checkout into " + dest);
  return Status::Ok();
}

}  // namespace buildfs

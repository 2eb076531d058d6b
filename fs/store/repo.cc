#include "fs/store/repo.h"

#include <dirent.h>
#include <fcntl.h>
#include <gio/gunixinputstream.h>
#include <ostree.h>
#include <sys/sysmacros.h>
#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "fs/common/fd.h"
#include "fs/common/path.h"
#include "fs/store/entry_table.h"

namespace buildfs {
namespace {

// Opens without touching the atime where the caller may (root or owner):
// an import records the times a tree has, and reading it must not change them.
int OpenQuietly(int dir_fd, const char* name, int flags) {
  int fd = openat(dir_fd, name, flags | O_NOATIME);
  if (fd < 0 && errno == EPERM) fd = openat(dir_fd, name, flags);
  return fd;
}

// Turns a GError into a Status and frees it.
Status FromGError(GError* error, const std::string& what) {
  std::string msg = what + ": " + (error ? error->message : "unknown error");
  int code = EIO;
  if (error && error->domain == G_IO_ERROR) {
    if (error->code == G_IO_ERROR_NOT_FOUND) code = ENOENT;
    if (error->code == G_IO_ERROR_NO_SPACE) code = ENOSPC;
    if (error->code == G_IO_ERROR_PERMISSION_DENIED) code = EACCES;
  }
  if (error) g_error_free(error);
  return Status::Error(code, msg);
}

GVariant* XattrsVariant(const Xattrs& xattrs) {
  GVariantBuilder b;
  g_variant_builder_init(&b, G_VARIANT_TYPE("a(ayay)"));
  for (const auto& [key, value] : xattrs) {
    g_variant_builder_add(&b, "(@ay@ay)", g_variant_new_bytestring(key.c_str()),
                          g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, value.data(),
                                                    value.size(), 1));
  }
  return g_variant_ref_sink(g_variant_builder_end(&b));
}

Xattrs Storable(const Xattrs& in) {
  Xattrs out;
  for (const auto& x : in) {
    if (!IsInternalXattr(x.first)) out.push_back(x);
  }
  return out;
}

std::string ChecksumHex(guchar* csum) {
  char hex[OSTREE_SHA256_STRING_LEN + 1];
  ostree_checksum_inplace_from_bytes(csum, hex);
  g_free(csum);
  return hex;
}

// Writes one content object: the bytes of `input` (none when null) with the
// type, owner and mode in `info` and `xattrs`; takes `input` and `info`.
// Returns its checksum.
Result<std::string> WriteContentObject(OstreeRepo* repo, GInputStream* input, GFileInfo* info,
                                       const Xattrs& xattrs, const char* what) {
  GVariant* xv = XattrsVariant(xattrs);
  GInputStream* content = nullptr;
  guint64 length = 0;
  GError* error = nullptr;
  gboolean ok = ostree_raw_file_to_content_stream(input, info, xv, &content, &length, nullptr, &error);
  guchar* csum = nullptr;
  if (ok) ok = ostree_repo_write_content(repo, nullptr, content, length, &csum, nullptr, &error);
  g_variant_unref(xv);
  g_object_unref(info);
  if (input) g_object_unref(input);
  if (content) g_object_unref(content);
  if (!ok) return FromGError(error, what);
  return ChecksumHex(csum);
}

}  // namespace

// ---- CommitBuilder ----

CommitBuilder::CommitBuilder(Repo* repo) : repo_(repo) { root_ = ostree_mutable_tree_new(); }

CommitBuilder::~CommitBuilder() {
  if (root_) g_object_unref(root_);
  if (in_transaction_) {
    ostree_repo_abort_transaction(repo_->raw(), nullptr, nullptr);
    repo_->DropAbandonedStaging(/*min_age_s=*/-1, staging_);
  }
  if (lock_) ostree_repo_auto_lock_cleanup(static_cast<OstreeRepoAutoLock*>(lock_));
}

Status CommitBuilder::FinishDir(Dir dir, uid_t uid, gid_t gid, mode_t mode, const Xattrs& xattrs,
                                const EntryRecord& self) {
  // Files in OSTree's order (byte-wise by name), as a dirtree lists them.
  EntryTable table = {self};
  auto entries = times_.find(dir);
  if (entries != times_.end()) {
    for (const auto& [name, times] : entries->second) table.push_back(times);
    times_.erase(entries);
  }
  Xattrs all = Storable(xattrs);
  std::string encoded = EncodeEntries(table);
  GHashTable* files = ostree_mutable_tree_get_files(dir);
  const bool name_taken = g_hash_table_contains(files, kTimesFile);
  if (encoded.size() > kTimesXattrMax && !name_taken) {
    // Too big for an xattr a checkout could set: a file of the directory.
    BUILDFS_ASSIGN_OR_RETURN(std::string csum, WriteBytes(encoded));
    GError* error = nullptr;
    if (!ostree_mutable_tree_replace_file(dir, kTimesFile, csum.c_str(), &error)) {
      return FromGError(error, kTimesFile);
    }
    encoded = kTimesInFile;
  }
  all.emplace_back(kTimesXattr, encoded);
  std::sort(all.begin(), all.end());
  return WriteDirMeta(dir, uid, gid, mode, all);
}

Result<std::string> CommitBuilder::WriteBytes(const std::string& data) {
  struct stat st = {};
  st.st_mode = S_IFREG | 0644;
  GInputStream* input = g_memory_input_stream_new_from_data(g_memdup2(data.data(), data.size()),
                                                            static_cast<gssize>(data.size()), g_free);
  GFileInfo* info = g_file_info_new();
  g_file_info_set_file_type(info, G_FILE_TYPE_REGULAR);
  g_file_info_set_attribute_uint32(info, "unix::uid", 0);
  g_file_info_set_attribute_uint32(info, "unix::gid", 0);
  g_file_info_set_attribute_uint32(info, "unix::mode", st.st_mode);
  g_file_info_set_size(info, static_cast<goffset>(data.size()));
  return WriteContentObject(repo_->raw(), input, info, {}, "writing the times table");
}

Status CommitBuilder::WriteDirMeta(Dir dir, uid_t uid, gid_t gid, mode_t mode, const Xattrs& xattrs) {
  GFileInfo* info = g_file_info_new();
  g_file_info_set_file_type(info, G_FILE_TYPE_DIRECTORY);
  g_file_info_set_attribute_uint32(info, "unix::uid", uid);
  g_file_info_set_attribute_uint32(info, "unix::gid", gid);
  g_file_info_set_attribute_uint32(info, "unix::mode", S_IFDIR | (mode & 07777));
  GVariant* xv = XattrsVariant(xattrs);
  GVariant* meta = g_variant_ref_sink(ostree_create_directory_metadata(info, xv));
  g_variant_unref(xv);
  g_object_unref(info);
  guchar* csum = nullptr;
  GError* error = nullptr;
  gboolean ok = ostree_repo_write_metadata(repo_->raw(), OSTREE_OBJECT_TYPE_DIR_META, nullptr,
                                           meta, &csum, nullptr, &error);
  g_variant_unref(meta);
  if (!ok) return FromGError(error, "writing directory metadata");
  std::string hex = ChecksumHex(csum);
  ostree_mutable_tree_set_metadata_checksum(dir, hex.c_str());
  return Status::Ok();
}

Result<CommitBuilder::Dir> CommitBuilder::AddDir(Dir parent, const std::string& name) {
  OstreeMutableTree* sub = nullptr;
  GError* error = nullptr;
  if (!ostree_mutable_tree_ensure_dir(parent, name.c_str(), &sub, &error)) {
    return FromGError(error, name);
  }
  g_object_unref(sub);  // the parent keeps it alive
  return sub;
}

Status CommitBuilder::AddTree(Dir parent, const std::string& name, const std::string& tree,
                              const std::string& meta) {
  BUILDFS_ASSIGN_OR_RETURN(Dir sub, AddDir(parent, name));
  if (!ostree_mutable_tree_fill_empty_from_dirtree(sub, repo_->raw(), tree.c_str(), meta.c_str())) {
    return Status::Error(EEXIST, "tree " + tree + ": directory not empty");
  }
  return Status::Ok();
}

Status CommitBuilder::AddFile(Dir parent, const std::string& name, const std::string& checksum,
                              const EntryRecord& times) {
  GError* error = nullptr;
  if (!ostree_mutable_tree_replace_file(parent, name.c_str(), checksum.c_str(), &error)) {
    return FromGError(error, name);
  }
  times_[parent][name] = times;
  return Status::Ok();
}

Result<std::string> CommitBuilder::WriteEntry(int dir_fd, const std::string& name,
                                              const struct stat& st, const Xattrs& xattrs) {
  if (S_ISREG(st.st_mode)) {
    UniqueFd fd(OpenQuietly(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) return Status::FromErrno(name);
    return WriteContent(st, xattrs, fd.get(), "");
  }
  if (S_ISLNK(st.st_mode)) {
    char target[PATH_MAX + 1];
    ssize_t n = readlinkat(dir_fd, name.c_str(), target, PATH_MAX);
    if (n < 0) return Status::FromErrno(name);
    return WriteContent(st, xattrs, -1, std::string(target, static_cast<size_t>(n)));
  }
  return WriteContent(st, xattrs, -1, "");
}

Result<std::string> CommitBuilder::WriteContent(const struct stat& st, const Xattrs& xattrs, int fd,
                                                const std::string& symlink_target) {
  Xattrs stored = Storable(xattrs);
  GFileInfo* info = g_file_info_new();
  g_file_info_set_attribute_uint32(info, "unix::uid", st.st_uid);
  g_file_info_set_attribute_uint32(info, "unix::gid", st.st_gid);
  GInputStream* input = nullptr;
  guint64 size = 0;
  if (S_ISREG(st.st_mode)) {
    // The stream gets its own fd: it closes it.
    int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    struct stat now;
    if (own < 0 || fstat(own, &now) != 0 || lseek(own, 0, SEEK_SET) < 0) {
      if (own >= 0) close(own);
      g_object_unref(info);
      return Status::FromErrno("reading content");
    }
    size = static_cast<guint64>(now.st_size);
    input = g_unix_input_stream_new(own, TRUE);
    g_file_info_set_file_type(info, G_FILE_TYPE_REGULAR);
    g_file_info_set_attribute_uint32(info, "unix::mode", st.st_mode);
  } else if (S_ISLNK(st.st_mode)) {
    g_file_info_set_file_type(info, G_FILE_TYPE_SYMBOLIC_LINK);
    g_file_info_set_symlink_target(info, symlink_target.c_str());
    g_file_info_set_attribute_uint32(info, "unix::mode", st.st_mode);
  } else {
    stored.emplace_back(kSpecialXattr, EncodeSpecial(st.st_mode, st.st_rdev));
    std::sort(stored.begin(), stored.end());
    g_file_info_set_file_type(info, G_FILE_TYPE_REGULAR);
    g_file_info_set_attribute_uint32(info, "unix::mode", S_IFREG | (st.st_mode & 07777));
    input = g_memory_input_stream_new();
  }
  g_file_info_set_size(info, static_cast<goffset>(size));
  return WriteContentObject(repo_->raw(), input, info, stored, "writing content");
}

Result<std::string> CommitBuilder::Finish(const std::string& ref, const std::string& parent,
                                          const std::string& message, const Root* unless_root) {
  // OSTree keeps a subject line and a body, as git does.
  const size_t newline = message.find('\n');
  const std::string subject = message.substr(0, newline);
  const size_t body_start =
      newline == std::string::npos ? std::string::npos : message.find_first_not_of('\n', newline);
  const std::string body = body_start == std::string::npos ? "" : message.substr(body_start);
  GError* error = nullptr;
  GFile* root = nullptr;
  if (!ostree_repo_write_mtree(repo_->raw(), root_, &root, nullptr, &error)) {
    return FromGError(error, "writing tree");
  }
  if (unless_root &&
      unless_root->tree == ostree_repo_file_tree_get_contents_checksum(OSTREE_REPO_FILE(root)) &&
      unless_root->meta == ostree_repo_file_tree_get_metadata_checksum(OSTREE_REPO_FILE(root))) {
    g_object_unref(root);
    return std::string();  // the destructor aborts the transaction
  }
  // The tree's objects land in objects/ first, in a transaction of their own:
  // OSTree moves a transaction's objects in no particular order, so a commit
  // object moved in with them could, killed half-way, name trees that are not
  // there (`ostree fsck` then fails). Trees without a commit are only garbage.
  if (!ostree_repo_commit_transaction(repo_->raw(), nullptr, nullptr, &error)) {
    g_object_unref(root);
    in_transaction_ = false;
    return FromGError(error, "committing the tree's objects");
  }
  in_transaction_ = false;
  if (!ostree_repo_prepare_transaction(repo_->raw(), nullptr, nullptr, &error)) {
    g_object_unref(root);
    return FromGError(error, "starting transaction");
  }
  in_transaction_ = true;
  char* commit = nullptr;
  gboolean ok = ostree_repo_write_commit(repo_->raw(), parent.empty() ? nullptr : parent.c_str(),
                                         subject.c_str(), body.empty() ? nullptr : body.c_str(),
                                         nullptr, OSTREE_REPO_FILE(root),
                                         &commit, nullptr, &error);
  g_object_unref(root);
  if (!ok) return FromGError(error, "writing commit");
  std::string checksum = commit;
  g_free(commit);
  ostree_repo_transaction_set_ref(repo_->raw(), nullptr, ref.c_str(), checksum.c_str());
  if (!ostree_repo_commit_transaction(repo_->raw(), nullptr, nullptr, &error)) {
    return FromGError(error, "committing transaction");
  }
  in_transaction_ = false;
  return checksum;
}

// ---- Repo ----

Repo::~Repo() { g_object_unref(repo_); }

Result<std::unique_ptr<Repo>> Repo::Create(const std::string& path) {
  GFile* file = g_file_new_for_path(path.c_str());
  OstreeRepo* repo = ostree_repo_new(file);
  g_object_unref(file);
  GError* error = nullptr;
  if (!ostree_repo_create(repo, OSTREE_REPO_MODE_BARE_USER, nullptr, &error)) {
    g_object_unref(repo);
    return FromGError(error, path);
  }
  return std::unique_ptr<Repo>(new Repo(repo, path));
}

Result<std::unique_ptr<Repo>> Repo::Open(const std::string& path) {
  GFile* file = g_file_new_for_path(path.c_str());
  OstreeRepo* repo = ostree_repo_new(file);
  g_object_unref(file);
  GError* error = nullptr;
  if (!ostree_repo_open(repo, nullptr, &error)) {
    g_object_unref(repo);
    return FromGError(error, path);
  }
  if (ostree_repo_get_mode(repo) != OSTREE_REPO_MODE_BARE_USER) {
    g_object_unref(repo);
    return Status::Error(EINVAL, path + ": repository mode must be bare-user");
  }
  return std::unique_ptr<Repo>(new Repo(repo, path));
}

Result<std::string> Repo::ResolveRef(const std::string& ref) {
  char* rev = nullptr;
  GError* error = nullptr;
  if (!ostree_repo_resolve_rev(repo_, ref.c_str(), TRUE, &rev, &error)) {
    return FromGError(error, ref);
  }
  if (!rev) return Status::Error(ENOENT, "no ref " + ref);
  std::string out = rev;
  g_free(rev);
  return out;
}

Result<std::vector<std::string>> Repo::ListRefs(const std::string& prefix_in) {
  std::string prefix = prefix_in;
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();  // OSTree refuses "a/"
  GHashTable* refs = nullptr;
  GError* error = nullptr;
  if (!ostree_repo_list_refs_ext(repo_, prefix.empty() ? nullptr : prefix.c_str(), &refs,
                                 OSTREE_REPO_LIST_REFS_EXT_NONE, nullptr, &error)) {
    return FromGError(error, "listing refs");
  }
  std::vector<std::string> out;
  GHashTableIter it;
  gpointer key, value;
  g_hash_table_iter_init(&it, refs);
  while (g_hash_table_iter_next(&it, &key, &value)) out.emplace_back(static_cast<char*>(key));
  g_hash_table_unref(refs);
  std::sort(out.begin(), out.end());
  return out;
}

Status Repo::SetRef(const std::string& ref, const std::string& checksum) {
  GError* error = nullptr;
  if (!ostree_repo_set_ref_immediate(repo_, nullptr, ref.c_str(),
                                     checksum.empty() ? nullptr : checksum.c_str(), nullptr, &error)) {
    return FromGError(error, ref);
  }
  return Status::Ok();
}

Status Repo::DeleteRef(const std::string& ref) { return SetRef(ref, ""); }

namespace {

OstreeRepoCheckoutFilterResult SkipTimesFiles(OstreeRepo*, const char* path, struct stat*, gpointer) {
  const char* slash = strrchr(path, '/');
  return strcmp(slash ? slash + 1 : path, kTimesFile) == 0 ? OSTREE_REPO_CHECKOUT_FILTER_SKIP
                                                         : OSTREE_REPO_CHECKOUT_FILTER_ALLOW;
}

}  // namespace

Status Repo::Checkout(const std::string& commit, const std::string& dest) {
  OstreeRepoCheckoutAtOptions options{};
  options.mode = OSTREE_REPO_CHECKOUT_MODE_USER;
  options.overwrite_mode = OSTREE_REPO_CHECKOUT_OVERWRITE_UNION_FILES;
  options.force_copy = TRUE;  // never a hard link into the repo: the files are changed later
  options.filter = SkipTimesFiles;
  GError* error = nullptr;
  if (!ostree_repo_checkout_at(repo_, &options, AT_FDCWD, dest.c_str(), commit.c_str(), nullptr, &error)) {
    return FromGError(error, "checkout of " + commit.substr(0, 12) + " into " + dest);
  }
  return Status::Ok();
}

Result<std::unique_ptr<CommitBuilder>> Repo::BeginCommit() {
  std::unique_ptr<CommitBuilder> b(new CommitBuilder(this));
  GError* error = nullptr;
  OstreeRepoAutoLock* lock =
      ostree_repo_auto_lock_push(repo_, OSTREE_REPO_LOCK_SHARED, nullptr, &error);
  if (!lock) return FromGError(error, "locking repository");
  b->lock_ = lock;
  const std::vector<std::string> before = StagingDirs();
  if (!ostree_repo_prepare_transaction(repo_, nullptr, nullptr, &error)) {
    return FromGError(error, "starting transaction");
  }
  b->in_transaction_ = true;
  // The staging directory OSTree just made (or resumed) for this transaction:
  // the new names, or every one when it resumed an old one.
  for (const auto& name : StagingDirs()) {
    if (!std::binary_search(before.begin(), before.end(), name)) b->staging_.push_back(name);
  }
  if (b->staging_.empty()) b->staging_ = before;
  return b;
}

namespace {

bool HasVisible(const Xattrs& xattrs) {
  for (const auto& x : xattrs) {
    if (!IsInternalXattr(x.first)) return true;
  }
  return false;
}

Status AddDirectoryContents(CommitBuilder& b, CommitBuilder::Dir mdir, int dir_fd,
                            const std::string& where, const Progress& progress,
                            uint64_t* count) {
  auto names = ListNamesAt(dir_fd);
  if (!names.ok()) return names.status().With(where.empty() ? "." : where);
  for (const auto& name : names.value()) {
    std::string path = JoinPath(where, name);
    struct stat st;
    if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return Status::FromErrno(path);
    BUILDFS_ASSIGN_OR_RETURN(Xattrs xattrs, ReadXattrsAt(dir_fd, name));
    if (S_ISDIR(st.st_mode)) {
      BUILDFS_ASSIGN_OR_RETURN(CommitBuilder::Dir sub, b.AddDir(mdir, name));
      UniqueFd sub_fd(OpenQuietly(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub_fd.valid()) return Status::FromErrno(path);
      BUILDFS_RETURN_IF_ERROR(AddDirectoryContents(b, sub, sub_fd.get(), path, progress, count));
      // The times read before the directory was listed (listing may touch its atime).
      BUILDFS_RETURN_IF_ERROR(b.FinishDir(sub, st.st_uid, st.st_gid, st.st_mode, xattrs, RecordFor(st, false)));
    } else {
      auto csum = b.WriteEntry(dir_fd, name, st, xattrs);
      if (!csum.ok()) return csum.status().With(where.empty() ? "." : where);
      BUILDFS_RETURN_IF_ERROR(b.AddFile(mdir, name, csum.value(), RecordFor(st, HasVisible(xattrs))));
    }
    progress.Report(++*count);
    if (progress.cancelled()) return Status::Error(ECANCELED, "interrupted");
  }
  return Status::Ok();
}

}  // namespace

Result<std::string> Repo::CommitDirectory(const std::string& dir, const std::string& ref,
                                          const std::string& subject, const Progress& progress) {
  BUILDFS_ASSIGN_OR_RETURN(auto builder, BeginCommit());
  if (dir.empty()) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    EntryRecord times;
    times.mtime = times.atime = now;
    BUILDFS_RETURN_IF_ERROR(builder->FinishDir(builder->root(), 0, 0, 0755, {}, times));
  } else {
    UniqueFd fd(OpenQuietly(AT_FDCWD, dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) return Status::FromErrno(dir);
    struct stat st;
    if (fstat(fd.get(), &st) != 0) return Status::FromErrno(dir);
    BUILDFS_ASSIGN_OR_RETURN(Xattrs xattrs, ReadXattrsAt(fd.get(), ""));
    uint64_t count = 0;
    BUILDFS_RETURN_IF_ERROR(AddDirectoryContents(*builder, builder->root(), fd.get(), "", progress, &count));
    BUILDFS_RETURN_IF_ERROR(builder->FinishDir(builder->root(), st.st_uid, st.st_gid, st.st_mode, xattrs,
                                               RecordFor(st, false)));
  }
  return builder->Finish(ref, "", subject);
}

std::vector<std::string> Repo::StagingDirs() {
  std::vector<std::string> out;
  UniqueFd tmp(openat(ostree_repo_get_dfd(repo_), "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!tmp.valid()) return out;
  auto names = ListNamesAt(tmp.get());
  if (!names.ok()) return out;
  for (const auto& name : names.value()) {
    if (name.rfind("staging-", 0) == 0 && !name.ends_with("-lock")) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

void Repo::DropAbandonedStaging(int min_age_s, const std::vector<std::string>& names) {
  UniqueFd tmp(openat(ostree_repo_get_dfd(repo_), "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!tmp.valid()) return;
  const time_t now = time(nullptr);
  for (const auto& name : StagingDirs()) {
    const bool named = std::find(names.begin(), names.end(), name) != names.end();
    struct stat st;
    if (fstatat(tmp.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    // A young directory may be one whose maker has not locked it yet.
    if (!named && (min_age_s < 0 || now - st.st_mtime < min_age_s)) continue;
    // A running transaction holds an OFD lock on NAME-lock (libglnx, which
    // deletes the file when it lets go). The lock is kept while the
    // directory goes, so nobody starts to resume it meanwhile.
    const std::string lock_name = name + "-lock";
    UniqueFd lock(openat(tmp.get(), lock_name.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!lock.valid()) continue;
    struct flock fl = {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(lock.get(), F_OFD_SETLK, &fl) != 0) continue;  // in use
    if (RemoveTreeAt(tmp.get(), name).ok()) unlinkat(tmp.get(), lock_name.c_str(), 0);
  }
}

Result<Repo::PruneStats> Repo::Prune() {
  GError* error = nullptr;
  OstreeRepoAutoLock* lock =
      ostree_repo_auto_lock_push(repo_, OSTREE_REPO_LOCK_EXCLUSIVE, nullptr, &error);
  if (!lock) return FromGError(error, "locking repository");
  PruneStats stats;
  guint64 freed = 0;
  gboolean ok = ostree_repo_prune(repo_, OSTREE_REPO_PRUNE_FLAGS_REFS_ONLY, -1, &stats.objects_total,
                                  &stats.objects_pruned, &freed, nullptr, &error);
  ostree_repo_auto_lock_cleanup(lock);
  if (!ok) return FromGError(error, "pruning");
  stats.bytes_freed = freed;
  return stats;
}

}  // namespace buildfs

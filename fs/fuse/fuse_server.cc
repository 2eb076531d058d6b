#define FUSE_USE_VERSION 312
#include "fs/fuse/fuse_server.h"

#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "fs/fuse/guard.h"

namespace buildfs {
namespace {

constexpr double kLongTimeout = 86400.0;
constexpr double kShortTimeout = 1.0;

Overlay* Ov(fuse_req_t req) { return static_cast<Overlay*>(fuse_req_userdata(req)); }
FileHandle* Fh(struct fuse_file_info* fi) { return reinterpret_cast<FileHandle*>(fi->fh); }
DirHandle* Dh(struct fuse_file_info* fi) { return reinterpret_cast<DirHandle*>(fi->fh); }

Caller CallerOf(fuse_req_t req) {
  const struct fuse_ctx* ctx = fuse_req_ctx(req);
  return Caller{ctx->uid, ctx->gid};
}

void ReplyErr(fuse_req_t req, const Status& st) { fuse_reply_err(req, st.ok() ? 0 : st.code()); }

struct fuse_entry_param ToEntry(const EntryOut& e) {
  struct fuse_entry_param p;
  std::memset(&p, 0, sizeof(p));
  p.ino = e.ino;
  p.attr = e.st;
  p.attr.st_ino = e.ino;
  p.attr_timeout = e.immutable ? kLongTimeout : kShortTimeout;
  p.entry_timeout = p.attr_timeout;
  return p;
}

void ReplyEntry(fuse_req_t req, const Result<EntryOut>& r) {
  if (!r.ok()) return ReplyErr(req, r.status());
  struct fuse_entry_param p = ToEntry(r.value());
  if (fuse_reply_entry(req, &p) != 0 && r->ino != 0) Ov(req)->Forget(r->ino, 1);
}

void ReplyAttr(fuse_req_t req, const Result<EntryOut>& r) {
  if (!r.ok()) return ReplyErr(req, r.status());
  fuse_reply_attr(req, &r->st, r->immutable ? kLongTimeout : kShortTimeout);
}

// ---- operations ----

void Init(void* /*userdata*/, struct fuse_conn_info* conn) {
  auto want = [&](unsigned cap) {
    if (conn->capable & cap) conn->want |= cap;
  };
  want(FUSE_CAP_SPLICE_WRITE);
  want(FUSE_CAP_SPLICE_MOVE);
  want(FUSE_CAP_SPLICE_READ);
  want(FUSE_CAP_READDIRPLUS);
  want(FUSE_CAP_READDIRPLUS_AUTO);
  want(FUSE_CAP_CACHE_SYMLINKS);
  want(FUSE_CAP_ATOMIC_O_TRUNC);
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  ReplyEntry(req, Ov(req)->Lookup(parent, name));
}

void Forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  Ov(req)->Forget(ino, nlookup);
  fuse_reply_none(req);
}

void ForgetMulti(fuse_req_t req, size_t count, struct fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; ++i) Ov(req)->Forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void GetAttr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* /*fi*/) {
  ReplyAttr(req, Ov(req)->GetAttr(ino));
}

void SetAttr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
             struct fuse_file_info* fi) {
  SetAttrIn in;
  in.set_mode = to_set & FUSE_SET_ATTR_MODE;
  in.set_uid = to_set & FUSE_SET_ATTR_UID;
  in.set_gid = to_set & FUSE_SET_ATTR_GID;
  in.set_size = to_set & FUSE_SET_ATTR_SIZE;
  in.set_atime = to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW);
  in.set_mtime = to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW);
  in.atime_now = to_set & FUSE_SET_ATTR_ATIME_NOW;
  in.mtime_now = to_set & FUSE_SET_ATTR_MTIME_NOW;
  // Without writeback caching the kernel sends a ctime-only change (chown to
  // the same owner) as a SETATTR with nothing to set.
  in.set_ctime = (to_set & FUSE_SET_ATTR_CTIME) || to_set == 0;
  in.mode = attr->st_mode;
  in.uid = attr->st_uid;
  in.gid = attr->st_gid;
  in.size = attr->st_size;
  in.atime = attr->st_atim;
  in.mtime = attr->st_mtim;
  ReplyAttr(req, Ov(req)->SetAttr(ino, in, fi ? Fh(fi) : nullptr));
}

void ReadLink(fuse_req_t req, fuse_ino_t ino) {
  auto r = Ov(req)->ReadLink(ino);
  if (!r.ok()) return ReplyErr(req, r.status());
  fuse_reply_readlink(req, r->c_str());
}

void MkNod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  ReplyEntry(req, Ov(req)->MakeNode(parent, name, mode, rdev, CallerOf(req)));
}

void MkDir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  ReplyEntry(req, Ov(req)->MakeDir(parent, name, mode, CallerOf(req)));
}

void Symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  ReplyEntry(req, Ov(req)->Symlink(parent, name, link, CallerOf(req)));
}

void Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent, const char* name) {
  ReplyEntry(req, Ov(req)->Link(ino, parent, name));
}

void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  ReplyErr(req, Ov(req)->Unlink(parent, name));
}

void RmDir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  ReplyErr(req, Ov(req)->RmDir(parent, name));
}

void Rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
            const char* newname, unsigned int flags) {
  ReplyErr(req, Ov(req)->Rename(parent, name, newparent, newname, flags));
}

// How the kernel treats an open file. A cached write that starts inside a
// page the kernel does not hold whole is cut at the page's end into two WRITE
// requests, and a commit's freeze may fall between them. A write-only handle
// (it cannot be mapped or read) skips the page cache, so each write(2) of up
// to max_write bytes is one request and lands in one layer.
void SetOpenFlags(const FileHandle& fh, struct fuse_file_info* fi) {
  fi->keep_cache = fh.keep_cache;
  fi->direct_io = (fh.flags & O_ACCMODE) == O_WRONLY;
}

void Open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  auto r = Ov(req)->Open(ino, fi->flags);
  if (!r.ok()) return ReplyErr(req, r.status());
  SetOpenFlags(*r.value(), fi);
  fi->fh = reinterpret_cast<uint64_t>(r.value().get());
  if (fuse_reply_open(req, fi) == 0) {
    r.value().release();
  } else {
    Ov(req)->Release(std::move(r.value()));
  }
}

void Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
            struct fuse_file_info* fi) {
  EntryOut entry;
  auto r = Ov(req)->Create(parent, name, mode, fi->flags, CallerOf(req), &entry);
  if (!r.ok()) return ReplyErr(req, r.status());
  SetOpenFlags(*r.value(), fi);
  fi->fh = reinterpret_cast<uint64_t>(r.value().get());
  struct fuse_entry_param p = ToEntry(entry);
  if (fuse_reply_create(req, &p, fi) == 0) {
    r.value().release();
  } else {
    Ov(req)->Release(std::move(r.value()));
    Ov(req)->Forget(entry.ino, 1);
  }
}

void Read(fuse_req_t req, fuse_ino_t /*ino*/, size_t size, off_t off, struct fuse_file_info* fi) {
  std::vector<Segment> segments;
  Status st = Ov(req)->ReadAt(Fh(fi), off, size, &segments);
  if (!st.ok()) return ReplyErr(req, st);
  if (segments.empty()) {
    fuse_reply_buf(req, nullptr, 0);
    return;
  }
  if (segments.size() == 1) {  // a plain file: the common case, no allocation
    struct fuse_bufvec one = FUSE_BUFVEC_INIT(segments[0].len);
    one.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
    one.buf[0].fd = segments[0].fd;
    one.buf[0].pos = segments[0].offset;
    fuse_reply_data(req, &one, FUSE_BUF_SPLICE_MOVE);
    return;
  }
  // One buffer per segment, each read from its fd at its offset (a
  // fuse_bufvec ends in an array of as many buffers as it counts).
  std::vector<char> storage(sizeof(fuse_bufvec) + (segments.size() - 1) * sizeof(fuse_buf), 0);
  auto* buf = reinterpret_cast<fuse_bufvec*>(storage.data());
  buf->count = segments.size();
  for (size_t i = 0; i < segments.size(); ++i) {
    fuse_buf& b = buf->buf[i];
    b.size = segments[i].len;
    b.flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
    b.fd = segments[i].fd;
    b.pos = segments[i].offset;
  }
  fuse_reply_data(req, buf, FUSE_BUF_SPLICE_MOVE);
}

void WriteBuf(fuse_req_t req, fuse_ino_t /*ino*/, struct fuse_bufvec* in, off_t off,
              struct fuse_file_info* fi) {
  auto written = Ov(req)->WriteAt(Fh(fi), off, fuse_buf_size(in), [in](int fd, off_t at) -> ssize_t {
    struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
    out.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
    out.buf[0].fd = fd;
    out.buf[0].pos = at;
    return fuse_buf_copy(&out, in, static_cast<fuse_buf_copy_flags>(0));
  });
  if (!written.ok()) return ReplyErr(req, written.status());
  fuse_reply_write(req, written.value());
}

void Release(fuse_req_t req, fuse_ino_t /*ino*/, struct fuse_file_info* fi) {
  Ov(req)->Release(std::unique_ptr<FileHandle>(Fh(fi)));
  fuse_reply_err(req, 0);
}

void Fsync(fuse_req_t req, fuse_ino_t /*ino*/, int datasync, struct fuse_file_info* fi) {
  ReplyErr(req, Ov(req)->Fsync(Fh(fi), datasync != 0));
}

void Fallocate(fuse_req_t req, fuse_ino_t /*ino*/, int mode, off_t offset, off_t length,
               struct fuse_file_info* fi) {
  ReplyErr(req, Ov(req)->Fallocate(Fh(fi), mode, offset, length));
}

void CopyFileRange(fuse_req_t req, fuse_ino_t /*ino_in*/, off_t off_in, struct fuse_file_info* fi_in,
                   fuse_ino_t /*ino_out*/, off_t off_out, struct fuse_file_info* fi_out, size_t len,
                   int /*flags*/) {
  auto copied = Ov(req)->CopyRange(Fh(fi_in), off_in, Fh(fi_out), off_out, len);
  if (!copied.ok()) return ReplyErr(req, copied.status());
  fuse_reply_write(req, copied.value());
}

void OpenDir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  auto r = Ov(req)->OpenDir(ino, /*list=*/false);
  if (!r.ok()) return ReplyErr(req, r.status());
  fi->fh = reinterpret_cast<uint64_t>(r.value().get());
  // The kernel drops a kept listing itself when it changes the directory;
  // a change the daemon makes on its own says so (KernelCache). Positions
  // are hashes of names, good in every listing of the directory.
  fi->cache_readdir = r.value()->cacheable;
  fi->keep_cache = r.value()->cacheable;
  if (fuse_reply_open(req, fi) == 0) r.value().release();
}

void DoReadDir(fuse_req_t req, size_t size, off_t off, struct fuse_file_info* fi, bool plus) {
  DirHandle* dh = Dh(fi);
  // The listing is taken when reading starts (and again at a rewind), not at
  // opendir: the kernel keeps what it reads from here as current unless the
  // directory changes after this point.
  if (off == 0 || !dh->listed) {
    Status listed = Ov(req)->List(dh);
    if (!listed.ok()) return ReplyErr(req, listed);
  }
  std::vector<char> buf(size);
  size_t used = 0;
  for (size_t i = dh->IndexAt(static_cast<uint64_t>(off)); i < dh->entries.size(); ++i) {
    const DirEntryOut& d = dh->entries[i];
    size_t n;
    if (plus) {
      struct fuse_entry_param p;
      std::memset(&p, 0, sizeof(p));
      bool looked_up = false;
      if (d.name == "." || d.name == "..") {
        p.attr.st_ino = d.ino;
        p.attr.st_mode = d.type;
      } else {
        auto e = Ov(req)->Lookup(dh->ino, d.name);
        if (!e.ok() || e->ino == 0) continue;  // gone since opendir
        p = ToEntry(e.value());
        looked_up = true;
      }
      n = fuse_add_direntry_plus(req, buf.data() + used, size - used, d.name.c_str(), &p,
                                 static_cast<off_t>(d.next));
      if (n > size - used) {
        if (looked_up) Ov(req)->Forget(p.ino, 1);
        break;
      }
    } else {
      struct stat st;
      std::memset(&st, 0, sizeof(st));
      st.st_ino = d.ino;
      st.st_mode = d.type;
      if (d.ino == 0) {
        auto e = Ov(req)->ReadDirEntry(dh->ino, d.name);
        if (!e.ok()) continue;  // gone since opendir
        st.st_ino = e->ino;
        st.st_mode = e->type;
      }
      n = fuse_add_direntry(req, buf.data() + used, size - used, d.name.c_str(), &st,
                            static_cast<off_t>(d.next));
      if (n > size - used) break;
    }
    used += n;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void ReadDir(fuse_req_t req, fuse_ino_t, size_t size, off_t off, struct fuse_file_info* fi) {
  DoReadDir(req, size, off, fi, false);
}

void ReadDirPlus(fuse_req_t req, fuse_ino_t, size_t size, off_t off, struct fuse_file_info* fi) {
  DoReadDir(req, size, off, fi, true);
}

void ReleaseDir(fuse_req_t req, fuse_ino_t, struct fuse_file_info* fi) {
  delete Dh(fi);
  fuse_reply_err(req, 0);
}

void FsyncDir(fuse_req_t req, fuse_ino_t, int, struct fuse_file_info*) { fuse_reply_err(req, 0); }

void StatFs(fuse_req_t req, fuse_ino_t) {
  auto r = Ov(req)->StatFs();
  if (!r.ok()) return ReplyErr(req, r.status());
  fuse_reply_statfs(req, &r.value());
}

void SetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
              int flags) {
  ReplyErr(req, Ov(req)->SetXattr(ino, name, std::string(value, size), flags));
}

void ReplySized(fuse_req_t req, const std::string& data, size_t size) {
  if (size == 0) {
    fuse_reply_xattr(req, data.size());
  } else if (size < data.size()) {
    fuse_reply_err(req, ERANGE);
  } else {
    fuse_reply_buf(req, data.data(), data.size());
  }
}

void GetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  auto r = Ov(req)->GetXattr(ino, name);
  if (!r.ok()) return ReplyErr(req, r.status());
  ReplySized(req, r.value(), size);
}

void ListXattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  auto r = Ov(req)->ListXattr(ino);
  if (!r.ok()) return ReplyErr(req, r.status());
  std::string list;
  for (const auto& n : r.value()) {
    list += n;
    list += '\0';
  }
  ReplySized(req, list, size);
}

void RemoveXattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  ReplyErr(req, Ov(req)->RemoveXattr(ino, name));
}

void Access(fuse_req_t req, fuse_ino_t ino, int /*mask*/) {
  // default_permissions: the kernel checks modes; this only confirms the entry exists.
  auto r = Ov(req)->GetAttr(ino);
  ReplyErr(req, r.status());
}

// Every operation runs through RunGuarded (guard.h); FORGET has no reply
// to fail with, so what it could not drop stays (a leak, not an error).
template <auto Op>
struct Guarded;

template <typename... Args, void (*Op)(fuse_req_t, Args...)>
struct Guarded<Op> {
  static void Run(fuse_req_t req, Args... args) noexcept {
    RunGuarded([&] { Op(req, args...); }, [req](int code) { fuse_reply_err(req, code); });
  }
  static void RunWithoutReply(fuse_req_t req, Args... args) noexcept {
    RunGuarded([&] { Op(req, args...); }, [req](int) { fuse_reply_none(req); });
  }
};

const struct fuse_lowlevel_ops kOps = [] {
  struct fuse_lowlevel_ops ops;
  std::memset(&ops, 0, sizeof(ops));
  ops.init = Init;
  ops.lookup = Guarded<Lookup>::Run;
  ops.forget = Guarded<Forget>::RunWithoutReply;
  ops.forget_multi = Guarded<ForgetMulti>::RunWithoutReply;
  ops.getattr = Guarded<GetAttr>::Run;
  ops.setattr = Guarded<SetAttr>::Run;
  ops.readlink = Guarded<ReadLink>::Run;
  ops.mknod = Guarded<MkNod>::Run;
  ops.mkdir = Guarded<MkDir>::Run;
  ops.symlink = Guarded<Symlink>::Run;
  ops.link = Guarded<Link>::Run;
  ops.unlink = Guarded<Unlink>::Run;
  ops.rmdir = Guarded<RmDir>::Run;
  ops.rename = Guarded<Rename>::Run;
  ops.open = Guarded<Open>::Run;
  ops.create = Guarded<Create>::Run;
  ops.read = Guarded<Read>::Run;
  ops.write_buf = Guarded<WriteBuf>::Run;
  // No flush: writes go straight to the layer file, so close has nothing to
  // report. The kernel learns that from the first ENOSYS and stops asking,
  // which saves a request per closed file.
  ops.release = Guarded<Release>::Run;
  ops.fsync = Guarded<Fsync>::Run;
  ops.fallocate = Guarded<Fallocate>::Run;
  ops.copy_file_range = Guarded<CopyFileRange>::Run;
  ops.opendir = Guarded<OpenDir>::Run;
  ops.readdir = Guarded<ReadDir>::Run;
  ops.readdirplus = Guarded<ReadDirPlus>::Run;
  ops.releasedir = Guarded<ReleaseDir>::Run;
  ops.fsyncdir = Guarded<FsyncDir>::Run;
  ops.statfs = Guarded<StatFs>::Run;
  ops.setxattr = Guarded<SetXattr>::Run;
  ops.getxattr = Guarded<GetXattr>::Run;
  ops.listxattr = Guarded<ListXattr>::Run;
  ops.removexattr = Guarded<RemoveXattr>::Run;
  ops.access = Guarded<Access>::Run;
  return ops;
}();

}  // namespace

FuseServer::~FuseServer() {
  Unmount();
  if (session_) fuse_session_destroy(session_);
}

Status FuseServer::Mount(const std::string& mountpoint, const FuseOptions& options) {
  options_ = options;
  std::string opts = "default_permissions,allow_other,subtype=buildfs,fsname=" + options.fsname;
  if (options.read_only) opts += ",ro";
  std::vector<std::string> argv_s = {"buildfs", "-o", opts};
  if (options.debug) argv_s.push_back("-d");
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  struct fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  session_ = fuse_session_new(&args, &kOps, sizeof(kOps), overlay_);
  if (!session_) return Status::Error(EINVAL, "cannot create the FUSE session");
  struct fuse_session* se = session_;
  overlay_->SetKernelCache(Overlay::KernelCache{
      [se](uint64_t parent, const std::string& name) {
        fuse_lowlevel_notify_inval_entry(se, parent, name.c_str(), name.size());
      },
      [se](uint64_t ino) { fuse_lowlevel_notify_inval_inode(se, ino, -1, 0); },
      [se](uint64_t dir) { fuse_lowlevel_notify_inval_inode(se, dir, 0, 0); }});
  if (fuse_session_mount(session_, mountpoint.c_str()) != 0) {
    return Status::Error(EIO, mountpoint + ": mount failed (see the messages above)");
  }
  mounted_ = true;
  return Status::Ok();
}

Status FuseServer::Run() {
  struct fuse_loop_config* config = fuse_loop_cfg_create();
  fuse_loop_cfg_set_clone_fd(config, 0);
  fuse_loop_cfg_set_idle_threads(config, static_cast<unsigned>(options_.max_idle_threads));
  // SIGINT, SIGTERM and SIGHUP end the loop; the caller then unmounts.
  fuse_set_signal_handlers(session_);
  int rc = fuse_session_loop_mt(session_, config);
  fuse_remove_signal_handlers(session_);
  fuse_loop_cfg_destroy(config);
  // A positive result is the signal that stopped the loop (libfuse 3.14
  // reports it so, and resets the session's "exited" state): a requested stop.
  if (rc < 0 && rc != -EINTR) return Status::Error(-rc, "FUSE loop failed");
  return Status::Ok();
}

void FuseServer::Stop() {
  if (session_) fuse_session_exit(session_);
}

void FuseServer::Unmount() {
  if (mounted_ && session_) {
    fuse_session_unmount(session_);
    mounted_ = false;
  }
}

}  // namespace buildfs

#include "fs/lifecycle/mounter.h"

#include <fcntl.h>
#include <malloc.h>
#include <limits.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <optional>

#include "fs/common/mounts.h"
#include "fs/common/path.h"
#include "fs/fuse/fuse_server.h"
#include "fs/lifecycle/control.h"
#include "fs/layers/ostree_layer.h"
#include "fs/lifecycle/stack.h"
#include "fs/store/lock.h"
#include "fs/store/repo.h"

namespace buildfs {
namespace {

std::string FsName(const std::string& name) { return "buildfs:" + name; }

// Where a result view keeps its state, and the ref that keeps its commit.
std::string ViewPath(const Workspace& ws, const std::string& name) { return ws.state_path() + "/views/" + name; }
// views/BUILD/REV: OSTree refs hold no '@'.
std::string ViewRef(const std::string& name) {
  std::string ref = "views/" + name;
  ref[ref.find('@')] = '/';
  return ref;
}
std::string MountLockPath(const Workspace& ws, const std::string& name) {
  return IsViewName(name) ? ViewPath(ws, name) + "/lock" : ws.lock_path(name);
}
std::string LogDir(const Workspace& ws, const std::string& name) {
  return IsViewName(name) ? ViewPath(ws, name) + "/logs" : ws.log_path(name);
}
bool IsBuildNumber(const std::string& s) {
  const size_t dot = s.find('.');
  return dot == 8 && s.size() > 9 && s.find_first_not_of("0123456789.") == std::string::npos &&
         s.find('.', dot + 1) == std::string::npos;
}

// What is mounted at the build's mount point, and whether this workspace's
// daemon for the build made it.
struct MountPointState {
  std::optional<MountEntry> mount;
  bool ours = false;
};

MountPointState StateOf(const Workspace& ws, const std::string& name) {
  MountPointState s;
  s.mount = MountAt(ws.mountpoint(name));
  s.ours = s.mount && s.mount->fstype == "fuse.buildfs" && s.mount->source == FsName(name);
  return s;
}

Status ForeignMount(const std::string& mountpoint, const MountEntry& m) {
  return Status::Error(EBUSY, mountpoint + ": busy: a " + m.fstype + " filesystem (" + m.source +
                                  ") that is not this build's is mounted there; buildfs leaves it alone");
}

// What the daemon does when a command asks over the control socket.
nlohmann::json HandleControl(const Workspace& ws, const std::string& name, Overlay& overlay,
                             const nlohmann::json& request) {
  std::string op = request.value("op", "");
  if (op == "ping") return ControlReply(Status::Ok());
  if (op == "freeze") {
    // Branch and commit: the upper becomes the frozen layer `id`.
    std::string id = request.value("id", "");
    if (id.empty() || id.find('/') != std::string::npos) return ControlReply(Status::Error(EINVAL, "bad layer id"));
    Status st = overlay.FreezeUpper([&](std::shared_ptr<DirLayer>* upper, StackLayer* frozen) {
      BUILDFS_RETURN_IF_ERROR(FreezeUpperOnDisk(ws, name, id));
      BUILDFS_ASSIGN_OR_RETURN(auto new_upper, OpenUpperLayer(ws, name));
      BUILDFS_ASSIGN_OR_RETURN(auto layer, OpenFrozenLayer(ws, id));
      *upper = std::move(new_upper);
      *frozen = {std::move(layer), true};
      return Status::Ok();
    });
    return ControlReply(st);
  }
  if (op == "unfreeze") {
    // A failed commit: its frozen layer `id` becomes the upper again.
    std::string id = request.value("id", "");
    Status st = overlay.UnfreezeUpper([&](std::shared_ptr<DirLayer>* upper) {
      BUILDFS_RETURN_IF_ERROR(UnfreezeUpperOnDisk(ws, name, id));
      BUILDFS_ASSIGN_OR_RETURN(auto opened, OpenUpperLayer(ws, name));
      *upper = std::move(opened);
      return Status::Ok();
    });
    return ControlReply(st);
  }
  if (op == "reload") {
    // After a commit: the lowers described by build.json show the same tree.
    auto info = ws.LoadBuild(name);
    if (!info.ok()) return ControlReply(info.status());
    auto lowers = OpenLowerLayers(ws, info.value(), /*with_cache=*/true);
    if (!lowers.ok()) return ControlReply(lowers.status());
    return ControlReply(overlay.ReplaceLowers(std::move(lowers.value())));
  }
  return ControlReply(Status::Error(EINVAL, "unknown control op '" + op + "'"));
}

// Serves `stack` at the mount point of `name` until it is unmounted or
// stopped; tells `ready` once whether the mount came up. A build's mount
// answers on its control socket; a result view is read-only and has none.
Status ServeStack(const Workspace& ws, const std::string& name, Result<LayerStack> stack, bool debug,
                  const std::function<void(const Status&)>& ready) {
  auto fail = [&](const Status& st) {
    ready(st);
    return st;
  };
  // New entries get exactly the mode the kernel asks for (it applied the
  // caller's umask already).
  umask(0);
  // A few malloc arenas, not one per thread that ever served a request: the
  // inode table is allocated by every thread and freed by others.
  mallopt(M_ARENA_MAX, 2);
  if (!stack.ok()) return fail(stack.status());
  Overlay overlay(std::move(stack.value()));
  Status prepared = overlay.Prepare();
  if (!prepared.ok()) return fail(prepared);
  const bool view = IsViewName(name);
  std::unique_ptr<ControlServer> control;
  if (!view) {
    auto started = ControlServer::Start(ws.build_path(name), [&](const nlohmann::json& req) {
      return HandleControl(ws, name, overlay, req);
    });
    if (!started.ok()) return fail(started.status());
    control = std::move(started.value());
  }
  FuseServer server(&overlay);
  FuseOptions options;
  options.fsname = FsName(name);
  options.debug = debug;
  options.read_only = view;
  Status mounted = server.Mount(ws.mountpoint(name), options);
  if (!mounted.ok()) return fail(mounted);
  ready(Status::Ok());
  Status ran = server.Run();
  server.Unmount();
  return ran;
}

Status Serve(const Workspace& ws, const BuildInfo& info, bool debug,
             const std::function<void(const Status&)>& ready) {
  return ServeStack(ws, info.name, OpenLayerStack(ws, info), debug, ready);
}

// A view's stack: its commit below an upper that stays empty.
Result<LayerStack> OpenViewStack(const Workspace& ws, const std::string& name) {
  const std::string dir = ViewPath(ws, name);
  BUILDFS_ASSIGN_OR_RETURN(std::string commit, ReadFile(dir + "/commit"));
  LayerStack stack;
  BUILDFS_ASSIGN_OR_RETURN(stack.upper, DirLayer::Open(dir + "/upper", {"", true, false}));
  BUILDFS_ASSIGN_OR_RETURN(stack.work, DirLayer::Open(dir + "/work", {"", false, false}));
  BUILDFS_ASSIGN_OR_RETURN(auto base, OstreeLayer::Open(ws.repo_path(), commit));
  stack.lowers.push_back({std::move(base), false});
  return stack;
}

// Starts the daemon as a program of its own and waits for its word.
Status StartDaemon(const Workspace& ws, const std::string& name, bool debug,
                   const DaemonLauncher& launcher, int lock_fd) {
  std::vector<std::string> args = launcher(name, debug);
  if (args.empty()) return Status::Error(EINVAL, "no daemon command");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string log = LogDir(ws, name) + "/mount.log";
  UniqueFd null_fd(open("/dev/null", O_RDWR | O_CLOEXEC));
  UniqueFd log_fd(open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!log_fd.valid()) log_fd.reset(open("/dev/null", O_WRONLY | O_CLOEXEC));
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return Status::FromErrno("pipe");
  UniqueFd ready_read(pipefd[0]), ready_write(pipefd[1]);
  fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) return Status::FromErrno("fork");
  if (pid == 0) {
    // Only async-signal-safe calls from here to exec. The daemon gets its own
    // session, /dev/null as stdin, the build's log as stdout and stderr, the
    // two fds of its contract, and nothing else the caller had open.
    setsid();
    int ready = fcntl(ready_write.get(), F_DUPFD, 10);
    int lock = fcntl(lock_fd, F_DUPFD, 10);
    dup2(null_fd.get(), 0);
    dup2(log_fd.get(), 1);
    dup2(log_fd.get(), 2);
    dup2(ready, kDaemonReadyFd);
    dup2(lock, kDaemonLockFd);
    close_range(kDaemonLockFd + 1, ~0U, 0);
    execv(argv[0], argv.data());
    const char msg[] = "cannot start the mount daemon\n";
    ssize_t ignored = write(kDaemonReadyFd, msg, sizeof(msg) - 1);
    (void)ignored;
    _exit(127);
  }
  ready_write.reset();
  std::string reply;
  char buf[512];
  for (;;) {
    ssize_t n = read(ready_read.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  if (reply != "ok\n") {
    int wstatus = 0;
    waitpid(pid, &wstatus, 0);
    while (!reply.empty() && reply.back() == '\n') reply.pop_back();
    return Status::Error(EIO, reply.empty() ? "the mount daemon died while starting" : reply);
  }
  // The daemon is in its own session now; nothing waits for it but init.
  return Status::Ok();
}

}  // namespace

bool IsMounted(const Workspace& ws, const std::string& name) {
  return FileLock::IsHeld(MountLockPath(ws, name));
}

bool IsViewName(const std::string& name) { return name.find('@') != std::string::npos; }

Status ValidateViewName(const std::string& name) {
  const size_t at = name.find('@');
  if (at == std::string::npos) return Status::Error(EINVAL, "'" + name + "' is not BUILD@NUMBER");
  BUILDFS_RETURN_IF_ERROR(ValidateBuildName(name.substr(0, at)));
  const std::string rev = name.substr(at + 1);
  const bool commit = rev.size() == 64 && rev.find_first_not_of("0123456789abcdef") == std::string::npos;
  if (!IsBuildNumber(rev) && !commit) {
    return Status::Error(EINVAL, "'" + name + "': after @ a build number (YYYYMMDD.N) or a full commit id");
  }
  return Status::Ok();
}

namespace {

// Makes the mount point of `name` ready: nothing foreign mounted there (left
// alone), a dead mount of ours detached, an empty directory. REQUIRES: the
// mount lock held, so no daemon serves `name`.
Status PrepareMountPoint(const Workspace& ws, const std::string& name) {
  const std::string mountpoint = ws.mountpoint(name);
  MountPointState there = StateOf(ws, name);
  if (there.mount && !there.ours) return ForeignMount(mountpoint, *there.mount);
  if (there.ours && umount2(mountpoint.c_str(), MNT_DETACH) != 0) {
    return Status::FromErrno(mountpoint + ": cleaning up a dead mount");
  }
  if (mkdir(mountpoint.c_str(), 0755) != 0 && errno != EEXIST) return Status::FromErrno(mountpoint);
  struct stat st;
  if (lstat(mountpoint.c_str(), &st) != 0) return Status::FromErrno(mountpoint);
  if (!S_ISDIR(st.st_mode)) return Status::Error(ENOTDIR, mountpoint + ": not a directory");
  if (DirHasEntries(mountpoint)) {
    return Status::Error(EBUSY, mountpoint + ": mount point is not empty; move its contents away");
  }
  return Status::Ok();
}

// Unmounts what the daemon of `name` serves and, unless `lazy`, waits for it
// to exit. `what` names it in messages ("build 'b'").
Status UnmountAt(const Workspace& ws, const std::string& name, bool lazy, const std::string& what) {
  const std::string mountpoint = ws.mountpoint(name);
  bool held = IsMounted(ws, name);
  MountPointState there = StateOf(ws, name);
  if (there.mount && !there.ours) return ForeignMount(mountpoint, *there.mount);
  if (!there.mount) {
    if (!held) return Status::Error(EINVAL, what + " is not mounted");
  } else if (umount2(mountpoint.c_str(), lazy ? MNT_DETACH : 0) != 0) {
    if (errno == EBUSY) {
      auto user = ProcessWorkingIn(mountpoint);
      if (user && user->pid == getppid()) {
        return Status::Error(EBUSY, mountpoint + ": busy: your shell (pid " + std::to_string(user->pid) +
                                        ") has its working directory in it");
      }
      if (user) {
        return Status::Error(EBUSY, mountpoint + ": busy: process " + std::to_string(user->pid) + " (" +
                                        user->command + ") has its working directory in it");
      }
      return Status::Error(EBUSY, mountpoint + ": busy: a process has files open in it");
    }
    if (errno != EINVAL && errno != ENOENT) return Status::FromErrno(mountpoint);
  }
  if (lazy) return Status::Ok();  // the daemon exits once the last user lets go
  // The daemon lets go of the lock when it has finished.
  auto lock = FileLock::Acquire(MountLockPath(ws, name), 30000);
  if (!lock.ok()) return Status::Error(ETIMEDOUT, what + ": the daemon did not exit");
  return Status::Ok();
}

// Forgets a view no daemon serves: its ref, its state, its mount point.
void DropView(const Workspace& ws, const std::string& name) {
  if (auto repo = Repo::Open(ws.repo_path()); repo.ok()) (*repo)->DeleteRef(ViewRef(name));
  RemoveTree(ViewPath(ws, name));
  rmdir(ws.mountpoint(name).c_str());  // only when empty: never a mount's contents
}

Status MountView(const Workspace& ws, const MountRequest& request, const DaemonLauncher& launcher) {
  const std::string& name = request.name;
  BUILDFS_RETURN_IF_ERROR(ValidateViewName(name));
  const size_t at = name.find('@');
  const std::string build = name.substr(0, at), rev = name.substr(at + 1);
  BUILDFS_ASSIGN_OR_RETURN(auto repo, Repo::Open(ws.repo_path()));
  auto commit = repo->ResolveRef(IsBuildNumber(rev) ? "builds/" + build + "/result/" + rev : rev);
  if (!commit.ok() || commit->empty()) {
    return Status::Error(ENOENT, IsBuildNumber(rev) ? "build '" + build + "' has no result " + rev
                                                    : "no commit " + rev + " in the repo");
  }
  const std::string dir = ViewPath(ws, name);
  for (const auto& d : {ws.state_path() + "/views", dir, dir + "/logs", dir + "/upper", dir + "/work"}) {
    if (mkdir(d.c_str(), 0755) != 0 && errno != EEXIST) return Status::FromErrno(d);
  }
  auto lock = FileLock::TryAcquire(MountLockPath(ws, name));
  if (!lock.ok()) {
    if (lock.code() == EWOULDBLOCK) return Status::Error(EBUSY, "'" + name + "' is already mounted");
    return lock.status();
  }
  const std::string mountpoint = ws.mountpoint(name);
  BUILDFS_RETURN_IF_ERROR(PrepareMountPoint(ws, name));
  // The ref first: from here on prune keeps the commit.
  Status st = repo->SetRef(ViewRef(name), commit.value());
  if (st.ok()) st = WriteFileAtomic(dir + "/commit", commit.value());
  if (st.ok() && request.foreground) {
    return ServeStack(ws, name, OpenViewStack(ws, name), request.debug, [](const Status&) {});
  }
  if (st.ok()) st = StartDaemon(ws, name, request.debug, launcher, lock->fd());
  if (!st.ok()) {
    DropView(ws, name);
    return st;
  }
  struct stat up;
  if (stat(mountpoint.c_str(), &up) != 0) return Status::FromErrno(mountpoint);
  return Status::Ok();
}

}  // namespace

void CollectViews(const Workspace& ws) {
  std::vector<std::string> names;
  if (auto listed = ListNames(ws.state_path() + "/views"); listed.ok()) names = listed.value();
  if (auto repo = Repo::Open(ws.repo_path()); repo.ok()) {
    if (auto refs = (*repo)->ListRefs("views/"); refs.ok()) {
      for (std::string ref : refs.value()) {
        ref = ref.substr(6);  // BUILD/REV
        if (ref.find('/') != std::string::npos) ref[ref.find('/')] = '@';
        names.push_back(ref);
      }
    }
  }
  for (const auto& name : names) {
    if (!IsViewName(name) || IsMounted(ws, name)) continue;
    auto lock = FileLock::TryAcquire(MountLockPath(ws, name));
    if (!lock.ok() && lock.code() == EWOULDBLOCK) continue;  // being mounted right now
    if (MountAt(ws.mountpoint(name))) continue;               // a dead mount: umount first
    DropView(ws, name);
  }
}

Status MountBuild(const Workspace& ws, const MountRequest& request, const DaemonLauncher& launcher) {
  if (IsViewName(request.name)) return MountView(ws, request, launcher);
  BUILDFS_ASSIGN_OR_RETURN(BuildLock held, BuildLock::Acquire(ws, request.name, "mount"));
  return MountBuild(ws, request, launcher, std::move(held));
}

Status MountBuild(const Workspace& ws, const MountRequest& request, const DaemonLauncher& launcher,
                  BuildLock held) {
  const std::string& name = request.name;
  BUILDFS_RETURN_IF_ERROR(ws.LoadBuild(name).status());
  std::string mountpoint = ws.mountpoint(name);
  auto lock = FileLock::TryAcquire(ws.lock_path(name));
  if (!lock.ok()) {
    if (lock.code() == EWOULDBLOCK) {
      return Status::Error(EBUSY, "build '" + name + "' is already mounted at " + mountpoint);
    }
    return lock.status();
  }
  // We hold the mount lock, so no daemon serves this build: a mount of ours there is dead.
  BUILDFS_RETURN_IF_ERROR(PrepareMountPoint(ws, name));
  BuildInfo info;
  {
    BUILDFS_ASSIGN_OR_RETURN(FileLock meta, LockWorkspaceMeta(ws));
    auto recovered = RecoverBuild(ws, name);
    // On a full disk the description may not be rewritable; the one on disk
    // shows the same tree, and the next operation completes the recovery.
    if (!recovered.ok() && recovered.code() == ENOSPC) recovered = ws.LoadBuild(name);
    BUILDFS_ASSIGN_OR_RETURN(info, std::move(recovered));
  }
  if (request.foreground) {
    // Other commands may use the build once it is mounted.
    std::optional<BuildLock> build_lock(std::move(held));
    return Serve(ws, info, request.debug, [&](const Status&) { build_lock.reset(); });
  }
  BUILDFS_RETURN_IF_ERROR(StartDaemon(ws, name, request.debug, launcher, lock->fd()));
  // Returns only once the filesystem answers.
  struct stat st;
  if (stat(mountpoint.c_str(), &st) != 0) return Status::FromErrno(mountpoint);
  return Status::Ok();
}

Status ServeDaemon(const Workspace& ws, const std::string& name, bool debug) {
  int ready_fd = kDaemonReadyFd;
  auto ready = [&](const Status& st) {
    if (ready_fd < 0) return;
    std::string msg = st.ok() ? "ok\n" : st.message() + "\n";
    ssize_t ignored = write(ready_fd, msg.data(), msg.size());
    (void)ignored;
    close(ready_fd);
    ready_fd = -1;
  };
  if (IsViewName(name)) return ServeStack(ws, name, OpenViewStack(ws, name), debug, ready);
  auto info = ws.LoadBuild(name);
  if (!info.ok()) {
    ready(info.status());
    return info.status();
  }
  return Serve(ws, info.value(), debug, ready);
}

Status UnmountBuild(const Workspace& ws, const std::string& name, bool lazy) {
  if (!IsViewName(name)) {
    BUILDFS_ASSIGN_OR_RETURN(BuildLock held, BuildLock::Acquire(ws, name, "umount"));
    return UnmountBuild(ws, name, lazy, held);
  }
  // A view: as a build's mount, then its ref and state go (after a lazy
  // unmount, prune drops them once its daemon is gone).
  BUILDFS_RETURN_IF_ERROR(ValidateViewName(name));
  BUILDFS_RETURN_IF_ERROR(UnmountAt(ws, name, lazy, "'" + name + "'"));
  if (!lazy) DropView(ws, name);
  return Status::Ok();
}

Status UnmountBuild(const Workspace& ws, const std::string& name, bool lazy, const BuildLock& /*held*/) {
  if (!ws.HasBuildDir(name)) return Status::Error(ENOENT, "no build named '" + name + "'");
  return UnmountAt(ws, name, lazy, "build '" + name + "'");
}

}  // namespace buildfs

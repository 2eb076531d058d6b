#include "fs/lifecycle/mounter.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

#include "fs/fuse/fuse_server.h"
#include "fs/layers/ostree_layer.h"
#include "fs/lifecycle/builds.h"
#include "fs/lifecycle/control.h"
#include "fs/lifecycle/stack.h"
#include "fs/store/lock.h"

namespace buildfs {
namespace {

// Unmounts a mount whose daemon is gone ("Transport endpoint is not connected").
Status CleanDeadMount(const std::string& mountpoint) {
  if (!IsMountPoint(mountpoint)) return Status::Ok();
  if (umount2(mountpoint.c_str(), MNT_DETACH) != 0) {
    return Status::FromErrno(mountpoint + ": cleaning up a dead mount");
  }
  return Status::Ok();
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
      BUILDFS_ASSIGN_OR_RETURN(auto new_upper, DirLayer::Open(ws.upper_path(name), {"", true, false}));
      BUILDFS_ASSIGN_OR_RETURN(auto layer, OpenFrozenLayer(ws, id));
      *upper = std::move(new_upper);
      *frozen = {std::move(layer), true};
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

// Serves the mount until it is unmounted. Runs in the daemon process.
Status Serve(const Workspace& ws, const BuildInfo& info, const MountRequest& request,
             int ready_fd) {
  auto report = [&](const Status& st) {
    if (ready_fd >= 0) {
      std::string msg = st.ok() ? "ok\n" : st.message() + "\n";
      ssize_t ignored = write(ready_fd, msg.data(), msg.size());
      (void)ignored;
      close(ready_fd);
      ready_fd = -1;
    }
    return st;
  };
  auto stack = OpenLayerStack(ws, info);
  if (!stack.ok()) return report(stack.status());
  Overlay overlay(std::move(stack.value()));
  Status prepared = overlay.Prepare();
  if (!prepared.ok()) return report(prepared);
  auto control = ControlServer::Start(ws.build_path(info.name), [&](const nlohmann::json& req) {
    return HandleControl(ws, info.name, overlay, req);
  });
  if (!control.ok()) return report(control.status());
  FuseServer server(&overlay);
  FuseOptions options;
  options.fsname = "buildfs:" + info.name;
  options.debug = request.debug;
  Status mounted = server.Mount(ws.mountpoint(info.name), options);
  if (!mounted.ok()) return report(mounted);
  report(Status::Ok());
  Status ran = server.Run();
  server.Unmount();
  return ran;
}

}  // namespace

bool IsMounted(const Workspace& ws, const std::string& name) {
  return FileLock::IsHeld(ws.lock_path(name));
}

Status MountBuild(const Workspace& ws, const MountRequest& request) {
  BUILDFS_RETURN_IF_ERROR(ws.LoadBuild(request.name).status());
  std::string mountpoint = ws.mountpoint(request.name);
  auto lock = FileLock::TryAcquire(ws.lock_path(request.name));
  if (!lock.ok()) {
    if (lock.code() == EWOULDBLOCK) {
      return Status::Error(EBUSY, "build '" + request.name + "' is already mounted at " + mountpoint);
    }
    return lock.status();
  }
  // We hold the lock, so no daemon serves this build: any mount there is dead.
  BUILDFS_RETURN_IF_ERROR(CleanDeadMount(mountpoint));
  BuildInfo info;
  {
    auto meta = LockWorkspaceMeta(ws);
    if (!meta.ok()) return meta.status();
    BUILDFS_ASSIGN_OR_RETURN(info, RecoverBuild(ws, request.name));
  }
  if (mkdir(mountpoint.c_str(), 0755) != 0 && errno != EEXIST) return Status::FromErrno(mountpoint);
  struct stat st;
  if (lstat(mountpoint.c_str(), &st) != 0) return Status::FromErrno(mountpoint);
  if (!S_ISDIR(st.st_mode)) return Status::Error(ENOTDIR, mountpoint + ": not a directory");
  if (DirHasEntries(mountpoint)) {
    return Status::Error(EBUSY, mountpoint + ": mount point is not empty; move its contents away");
  }

  if (request.foreground) return Serve(ws, info, request, -1);

  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return Status::FromErrno("pipe");
  fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) return Status::FromErrno("fork");
  if (pid == 0) {
    // The daemon: its own session, output to the build's log.
    close(pipefd[0]);
    setsid();
    std::string log = ws.log_path(request.name) + "/mount.log";
    int null_fd = open("/dev/null", O_RDONLY);
    int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (null_fd >= 0) dup2(null_fd, 0);
    if (log_fd >= 0) {
      dup2(log_fd, 1);
      dup2(log_fd, 2);
    }
    Status st = Serve(ws, info, request, pipefd[1]);
    if (!st.ok()) fprintf(stderr, "buildfs: %s\n", st.message().c_str());
    _exit(st.ok() ? 0 : 1);
  }
  close(pipefd[1]);
  std::string reply;
  char buf[512];
  for (;;) {
    ssize_t n = read(pipefd[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  close(pipefd[0]);
  if (reply != "ok\n") {
    int wstatus = 0;
    waitpid(pid, &wstatus, 0);
    while (!reply.empty() && reply.back() == '\n') reply.pop_back();
    return Status::Error(EIO, reply.empty() ? "the mount daemon died while starting" : reply);
  }
  // Returns only once the filesystem answers.
  if (stat(mountpoint.c_str(), &st) != 0) return Status::FromErrno(mountpoint);
  return Status::Ok();
}

Status UnmountBuild(const Workspace& ws, const std::string& name, bool lazy) {
  BUILDFS_RETURN_IF_ERROR(ws.LoadBuild(name).status());
  std::string mountpoint = ws.mountpoint(name);
  bool held = FileLock::IsHeld(ws.lock_path(name));
  // `buildfs umount` run inside the build must not keep it busy itself.
  if (chdir(ws.root().c_str()) != 0) return Status::FromErrno(ws.root());
  if (!IsMountPoint(mountpoint)) {
    if (!held) return Status::Error(EINVAL, "build '" + name + "' is not mounted");
  } else if (umount2(mountpoint.c_str(), lazy ? MNT_DETACH : 0) != 0) {
    if (errno == EBUSY) {
      return Status::Error(EBUSY, mountpoint + ": busy (a process uses it); hint: close it, or --lazy");
    }
    if (errno != EINVAL && errno != ENOENT) return Status::FromErrno(mountpoint);
  }
  if (lazy) return Status::Ok();  // the daemon exits once the last user lets go
  // The daemon lets go of the lock when it has finished.
  auto lock = FileLock::Acquire(ws.lock_path(name), 30000);
  if (!lock.ok()) return Status::Error(ETIMEDOUT, "build '" + name + "': the daemon did not exit");
  return Status::Ok();
}

}  // namespace buildfs

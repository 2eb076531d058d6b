// FuseServer: the FUSE channel of a mounted build (libfuse3 low-level API).
//
// This is the only code that includes <fuse_lowlevel.h>. It decodes requests,
// calls the Overlay, maps Status errors to errno replies, and replies exactly
// once per request. No overlay logic lives here, so the channel under the
// overlay can be replaced without the overlay noticing.
//
// Replies carry file descriptors where they can (fuse_reply_data with
// FUSE_BUF_IS_FD: the kernel splices the data). Entries of immutable layers
// and of the upper (changed only through this mount) get long kernel cache
// timeouts and keep_cache; entries of the shared cache/ get short ones.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "fs/common/status.h"
#include "fs/overlay/overlay.h"

struct fuse_session;

namespace buildfs {

struct FuseOptions {
  std::string fsname = "buildfs";
  bool debug = false;
  bool read_only = false;  // the kernel refuses every change (EROFS)
  int max_idle_threads = 8;
};

class FuseServer {
 public:
  explicit FuseServer(Overlay* overlay) : overlay_(overlay) {}
  ~FuseServer();
  FuseServer(const FuseServer&) = delete;
  FuseServer& operator=(const FuseServer&) = delete;

  // Creates the session and mounts it at `mountpoint`; requests queue in the
  // kernel until Run() starts serving them.
  Status Mount(const std::string& mountpoint, const FuseOptions& options);
  // Serves requests (multi-threaded) until unmounted or Stop() is called.
  Status Run();
  // Asks Run() to return; safe from any thread and from signal handlers.
  void Stop();
  // Unmounts (after Run() returned).
  void Unmount();

  Overlay* overlay() const { return overlay_; }

 private:
  Overlay* overlay_;
  struct fuse_session* session_ = nullptr;
  bool mounted_ = false;
  FuseOptions options_;
};

}  // namespace buildfs

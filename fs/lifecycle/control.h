// The control socket of a mounted build: how commands reach its daemon.
//
// The daemon listens on .buildfs/builds/NAME/control.sock. A request is one
// line of JSON ({"op": ...}), the reply one line of JSON ({"ok": true, ...} or
// {"ok": false, "error": "...", "errno": N}). Requests are served one at a
// time by one thread. The socket is bound and reached through the build
// directory's fd, so long workspace paths do not hit the sun_path limit.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "fs/common/fd.h"
#include "fs/common/status.h"

namespace buildfs {

class ControlServer {
 public:
  using Handler = std::function<nlohmann::json(const nlohmann::json& request)>;
  // Listens in `dir` and serves requests with `handler` on its own thread.
  static Result<std::unique_ptr<ControlServer>> Start(const std::string& dir, Handler handler);
  ~ControlServer();  // stops the thread and removes the socket
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

 private:
  ControlServer() = default;
  void Serve();

  UniqueFd dir_;
  UniqueFd listen_;
  UniqueFd stop_;  // eventfd that ends Serve()
  Handler handler_;
  std::thread thread_;
};

// Sends one request to the daemon serving `dir` and returns its reply, or an
// error Status built from a failed reply.
Result<nlohmann::json> ControlCall(const std::string& dir, const nlohmann::json& request);

// Turns a handler's Status into a reply.
nlohmann::json ControlReply(const Status& st);

}  // namespace buildfs

#include "fs/lifecycle/control.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace buildfs {
namespace {

constexpr char kSocketName[] = "control.sock";

Result<sockaddr_un> AddressIn(int dir_fd) {
  sockaddr_un addr;
  std::memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  std::string path = "/proc/self/fd/" + std::to_string(dir_fd) + "/" + kSocketName;
  if (path.size() >= sizeof(addr.sun_path)) return Status::Error(ENAMETOOLONG, path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

bool ReadLine(int fd, std::string* out) {
  char buf[4096];
  while (out->find('\n') == std::string::npos) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return !out->empty();
    out->append(buf, static_cast<size_t>(n));
  }
  out->resize(out->find('\n'));
  return true;
}

bool WriteAll(int fd, const std::string& data) {
  for (size_t done = 0; done < data.size();) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

nlohmann::json ControlReply(const Status& st) {
  if (st.ok()) return {{"ok", true}};
  return {{"ok", false}, {"error", st.message()}, {"errno", st.code()}};
}

Result<std::unique_ptr<ControlServer>> ControlServer::Start(const std::string& dir, Handler handler) {
  std::unique_ptr<ControlServer> s(new ControlServer());
  s->handler_ = std::move(handler);
  s->dir_.reset(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!s->dir_.valid()) return Status::FromErrno(dir);
  unlinkat(s->dir_.get(), kSocketName, 0);  // left by a daemon that died
  s->listen_.reset(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s->listen_.valid()) return Status::FromErrno("control socket");
  BUILDFS_ASSIGN_OR_RETURN(sockaddr_un addr, AddressIn(s->dir_.get()));
  if (bind(s->listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(s->listen_.get(), 8) != 0) {
    return Status::FromErrno(dir + "/" + kSocketName);
  }
  fchmodat(s->dir_.get(), kSocketName, 0600, 0);
  s->stop_.reset(eventfd(0, EFD_CLOEXEC));
  if (!s->stop_.valid()) return Status::FromErrno("eventfd");
  s->thread_ = std::thread([p = s.get()] { p->Serve(); });
  return s;
}

ControlServer::~ControlServer() {
  uint64_t one = 1;
  if (stop_.valid() && write(stop_.get(), &one, sizeof(one)) < 0) {
    // Nothing to do: the thread then ends with the process.
  }
  if (thread_.joinable()) thread_.join();
  if (dir_.valid()) unlinkat(dir_.get(), kSocketName, 0);
}

void ControlServer::Serve() {
  for (;;) {
    struct pollfd fds[2] = {{listen_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    UniqueFd conn(accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn.valid()) continue;
    std::string line;
    nlohmann::json reply;
    if (!ReadLine(conn.get(), &line)) continue;
    try {
      reply = handler_(nlohmann::json::parse(line));
    } catch (const std::exception& e) {
      reply = ControlReply(Status::Error(EINVAL, std::string("bad control request: ") + e.what()));
    }
    WriteAll(conn.get(), reply.dump() + "\n");
  }
}

Result<nlohmann::json> ControlCall(const std::string& dir, const nlohmann::json& request) {
  UniqueFd dir_fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir_fd.valid()) return Status::FromErrno(dir);
  UniqueFd sock(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock.valid()) return Status::FromErrno("control socket");
  BUILDFS_ASSIGN_OR_RETURN(sockaddr_un addr, AddressIn(dir_fd.get()));
  if (connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Status::FromErrno("reaching the mount daemon");
  }
  if (!WriteAll(sock.get(), request.dump() + "\n")) return Status::FromErrno("control request");
  std::string line;
  if (!ReadLine(sock.get(), &line)) return Status::Error(EIO, "the mount daemon did not answer");
  auto reply = nlohmann::json::parse(line, nullptr, false);
  if (reply.is_discarded()) return Status::Error(EIO, "bad reply from the mount daemon");
  if (!reply.value("ok", false)) {
    return Status::Error(reply.value("errno", EIO), reply.value("error", std::string("failed")));
  }
  return reply;
}

}  // namespace buildfs

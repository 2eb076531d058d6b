#include "builder/build.h"

#include <fcntl.h>
#include <glib.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <ctime>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "builder/git_mirror.h"
#include "builder/manifest.h"
#include "fs/common/fd.h"
#include "fs/common/path.h"
#include "fs/store/lock.h"
#include "fs/store/objects.h"
#include "fs/store/repo.h"

extern char** environ;

namespace buildfs {
namespace {

using Json = nlohmann::json;

std::string Sha256(const std::string& data) {
  gchar* sum = g_compute_checksum_for_string(G_CHECKSUM_SHA256, data.data(), static_cast<gssize>(data.size()));
  std::string out(sum);
  g_free(sum);
  return out;
}

void Say(const BuildOptions& o, const std::string& line) {
  if (o.say) o.say(line);
}

std::string StatePath(const Workspace& ws, const std::string& name) {
  return ws.build_path(name) + "/builder.json";
}

std::string Today() {
  time_t now = time(nullptr);
  struct tm tm;
  localtime_r(&now, &tm);
  char buf[16];
  strftime(buf, sizeof(buf), "%Y%m%d", &tm);
  return buf;
}

// The next build number of today: one past every number taken today.
Result<std::string> NextNumber(Repo& repo, const std::string& name, const std::string& last) {
  const std::string today = Today();
  BUILDFS_ASSIGN_OR_RETURN(auto refs, repo.ListRefs("builds/" + name + "/result/"));
  std::vector<std::string> taken;
  for (const auto& ref : refs) taken.push_back(ref.substr(ref.rfind('/') + 1));
  taken.push_back(last);
  int n = 0;
  for (const auto& t : taken) {
    if (t.rfind(today + ".", 0) == 0) n = std::max(n, std::atoi(t.c_str() + today.size() + 1));
  }
  return today + "." + std::to_string(n + 1);
}

// A component as the snapshot records it: everything that decides its result.
Result<Json> Pinned(const Component& c, const std::string& revision, const std::string& dir) {
  Json patches = Json::array();
  for (const auto& p : c.patches) {
    auto text = ReadFile(dir + "/" + p);
    if (!text.ok()) return Status::Error(ENOENT, "component " + c.name + ": patch " + p + ": cannot read");
    patches.push_back({{"path", p}, {"sha256", Sha256(text.value())}});
  }
  Json j = {{"name", c.name}, {"src", c.src}, {"revision", revision}, {"depends", c.depends},
            {"env", c.env}, {"patches", patches}};
  if (c.build_system.empty()) {
    j["build-commands"] = c.build_commands;
  } else {
    j["build-system"] = c.build_system;
    j["config-opts"] = c.config_opts;
  }
  return j;
}

struct Resolved {
  Manifest manifest;
  Json snapshot;
  std::vector<std::string> revisions;
  std::vector<std::string> mirrors;
  ResolveReport report;
};

Result<Resolved> DoResolve(const Workspace& ws, const std::string& name, const BuildOptions& o) {
  Resolved r;
  BUILDFS_ASSIGN_OR_RETURN(r.manifest, LoadManifest(o.dir + "/manifest.json"));
  const std::string src_dir = ws.root() + "/src";
  if (mkdir(src_dir.c_str(), 0755) != 0 && errno != EEXIST) return Status::FromErrno(src_dir);
  Json components = Json::array();
  std::map<std::string, bool> fetched;
  for (const auto& c : r.manifest.components) {
    if (o.progress.cancelled()) return Status::Error(ECANCELED, "cancelled");
    const std::string mirror = MirrorPath(src_dir, c.src);
    if (!fetched[mirror]) {
      Say(o, "fetching " + c.src);
      BUILDFS_RETURN_IF_ERROR(UpdateMirror(mirror, c.src).With("component " + c.name));
      fetched[mirror] = true;
    }
    BUILDFS_ASSIGN_OR_RETURN(std::string rev, ResolvePin(mirror, c));
    BUILDFS_ASSIGN_OR_RETURN(Json pinned, Pinned(c, rev, o.dir));
    components.push_back(pinned);
    r.revisions.push_back(rev);
    r.mirrors.push_back(mirror);
  }
  r.snapshot = {{"format", kBuilderFormat}, {"name", r.manifest.name}, {"components", components}};
  r.report.snapshot = Sha256(r.snapshot.dump());

  Json state = Json::object();
  if (auto text = ReadFile(StatePath(ws, name)); text.ok()) {
    state = Json::parse(text.value(), nullptr, /*allow_exceptions=*/false);
    if (!state.is_object()) state = Json::object();
  }
  const std::string last = state.value("number", "");
  if (!last.empty() && state.value("snapshot", "") == r.report.snapshot) {
    r.report.number = last;
  } else {
    BUILDFS_ASSIGN_OR_RETURN(auto repo, Repo::Open(ws.repo_path()));
    BUILDFS_ASSIGN_OR_RETURN(r.report.number, NextNumber(*repo, name, last));
    r.report.changed = true;
    state["number"] = r.report.number;
    state["snapshot"] = r.report.snapshot;
    BUILDFS_RETURN_IF_ERROR(WriteFileAtomic(StatePath(ws, name), state.dump(2) + "\n"));
  }
  Json written = r.snapshot;
  written["number"] = r.report.number;
  BUILDFS_RETURN_IF_ERROR(WriteFileAtomic(o.dir + "/snapshot.json", written.dump(2) + "\n"));
  return r;
}

// Single-quoted for the shell.
std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The commands of a component. make takes its parallelism from MAKEFLAGS
// (the builder's job server), so none of them names -j: a -j on make's
// command line would leave the job server.
std::vector<std::string> CommandsOf(const Component& c) {
  if (c.build_system.empty()) return c.build_commands;
  std::string opts;
  for (const auto& o : c.config_opts) opts += " " + Quote(o);
  if (c.build_system == "cmake") {
    return {"cmake -S . -B _build -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_PREFIX_PATH=\"$SYSROOT/usr\"" + opts,
            "cmake --build _build", "DESTDIR=\"$DESTDIR\" cmake --install _build"};
  }
  if (c.build_system == "autotools") {
    return {"test -x ./configure || autoreconf -fi", "./configure --prefix=/usr" + opts, "make",
            "make install DESTDIR=\"$DESTDIR\""};
  }
  return {"make PREFIX=/usr" + opts, "make install DESTDIR=\"$DESTDIR\" PREFIX=/usr"};
}

// GNU make's job server, shared by every component of a build: a pipe that
// holds a token per free core. A component takes one before its commands
// run (the one its make runs a job on without asking) and gives it back
// after; its make takes more for more jobs, so a component that runs alone
// uses every core, and components running together never use more than the
// build's share.
class JobServer {
 public:
  static Result<JobServer> Make(int slots) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return Status::FromErrno("pipe");
    JobServer js;
    js.read_.reset(fds[0]);
    js.write_.reset(fds[1]);
    // The builder's own read end, non-blocking whatever make does to its own.
    js.take_.reset(open(("/proc/self/fd/" + std::to_string(fds[0])).c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    if (!js.take_.valid()) return Status::FromErrno("job server");
    js.slots_ = slots;
    for (int i = 0; i < slots; ++i) js.Give();
    return js;
  }
  // Waits for a token; ECANCELED when the build is cancelled meanwhile.
  Status Take(const Progress& progress) {
    for (;;) {
      char token;
      if (read(take_.get(), &token, 1) == 1) return Status::Ok();
      if (errno != EAGAIN && errno != EINTR) return Status::FromErrno("job server");
      if (progress.cancelled()) return Status::Error(ECANCELED, "cancelled");
      struct pollfd p = {take_.get(), POLLIN, 0};
      poll(&p, 1, 100);
    }
  }
  void Give() {
    const char token = '+';
    while (write(write_.get(), &token, 1) < 0 && errno == EINTR) {
    }
  }
  // MAKEFLAGS of the commands, and the fds they inherit.
  std::string MakeFlags() const {
    return "-j" + std::to_string(slots_) + " --jobserver-auth=" + std::to_string(read_.get()) + "," +
           std::to_string(write_.get());
  }
  std::vector<int> fds() const { return {read_.get(), write_.get()}; }

 private:
  UniqueFd read_, write_, take_;
  int slots_ = 0;
};

// Runs `command` with /bin/sh in `cwd`, output appended to `log`; in a
// process group of its own, which a cancel stops.
Status RunLogged(const std::string& command, const std::string& cwd, const std::vector<std::string>& env,
                 const std::string& log, const Progress& progress, const std::vector<int>& inherit = {}) {
  UniqueFd out(open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!out.valid()) return Status::FromErrno(log);
  const std::string header = "+ " + command + "\n";
  if (write(out.get(), header.data(), header.size()) < 0) return Status::FromErrno(log);
  std::vector<char*> envp;
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) return Status::FromErrno("fork");
  if (pid == 0) {
    setpgid(0, 0);
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, STDIN_FILENO);
    dup2(out.get(), STDOUT_FILENO);
    dup2(out.get(), STDERR_FILENO);
    for (int fd : inherit) fcntl(fd, F_SETFD, 0);
    if (chdir(cwd.c_str()) != 0) _exit(126);
    execle("/bin/sh", "sh", "-ec", command.c_str(), static_cast<char*>(nullptr), envp.data());
    _exit(127);
  }
  setpgid(pid, pid);
  int status = 0;
  for (;;) {
    pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) return Status::FromErrno("waitpid");
    if (progress.cancelled()) {
      // SIGTERM to the whole group, SIGKILL for what is still there after 5 s.
      kill(-pid, SIGTERM);
      for (int waited = 0; waitpid(pid, &status, WNOHANG) == 0; waited += 20) {
        if (waited >= 5000) {
          kill(-pid, SIGKILL);
          waitpid(pid, &status, 0);
          break;
        }
        usleep(20 * 1000);
      }
      kill(-pid, SIGKILL);  // what the shell left running in the group
      return Status::Error(ECANCELED, "cancelled");
    }
    usleep(20 * 1000);
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Status::Ok();
  const std::string how = WIFEXITED(status) ? "exited with " + std::to_string(WEXITSTATUS(status))
                                            : "killed by signal " + std::to_string(WTERMSIG(status));
  return Status::Error(ECHILD, "`" + command + "` " + how);
}

// Debian's multiarch name of this machine ("x86_64-linux-gnu").
std::string Multiarch() {
  struct utsname u;
  if (uname(&u) != 0) return "x86_64-linux-gnu";
  const std::string m = u.machine;
  return (m == "i686" || m == "i586" ? std::string("i386") : m) + "-linux-gnu";
}

// The environment of a component's commands.
std::vector<std::string> EnvFor(const Component& c, const std::string& work, const JobServer& js) {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    const size_t eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  const std::string sys = work + "/sysroot";
  // Libraries in usr/lib and in Debian's multiarch directory (where cmake's
  // GNUInstallDirs puts them with prefix /usr).
  const std::string multiarch = sys + "/usr/lib/" + Multiarch();
  const std::string libs = sys + "/usr/lib:" + multiarch;
  env["DESTDIR"] = work + "/install";
  env["PREFIX"] = "/usr";
  env["SYSROOT"] = sys;
  env["PATH"] = sys + "/usr/bin:" + sys + "/bin:" + (env.count("PATH") ? env["PATH"] : "/usr/bin:/bin");
  env["CPATH"] = sys + "/usr/include";
  env["LIBRARY_PATH"] = libs;
  env["LD_LIBRARY_PATH"] = libs;
  env["PKG_CONFIG_PATH"] = sys + "/usr/lib/pkgconfig:" + multiarch + "/pkgconfig:" + sys + "/usr/share/pkgconfig";
  env["PKG_CONFIG_SYSROOT_DIR"] = sys;
  env["MAKEFLAGS"] = js.MakeFlags();
  for (const auto& [k, v] : c.env) env[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

// An exclusive lock on one cache key, so that two builds never build the
// same component at the same moment.
Result<FileLock> LockKey(const Workspace& ws, const std::string& key) {
  const std::string dir = ws.state_path() + "/component-locks";
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return Status::FromErrno(dir);
  return FileLock::Wait(dir + "/" + key);
}

struct Job {
  const Component* c;
  std::string key, ref, commit, mirror, revision;
  std::vector<size_t> all_deps;  // every component it depends on, in dependency order
  bool reused = false;
};

Status BuildOne(const Workspace& ws, const BuildOptions& o, Job& job, const std::vector<Job>& jobs,
                JobServer& js) {
  const Component& c = *job.c;
  BUILDFS_ASSIGN_OR_RETURN(FileLock lock, LockKey(ws, job.key));
  BUILDFS_ASSIGN_OR_RETURN(auto repo, Repo::Open(ws.repo_path()));
  if (auto done = repo->ResolveRef(job.ref); done.ok() && !done->empty()) {
    job.commit = done.value();  // another build made it meanwhile
    job.reused = true;
    return Status::Ok();
  }
  const std::string work = o.dir + "/work/" + c.name;
  const std::string log = LogPath(o.dir, c.name);
  RemoveTree(work);
  unlink(log.c_str());
  for (const auto& d : {o.dir + "/work", work, work + "/install", work + "/sysroot"}) {
    if (mkdir(d.c_str(), 0755) != 0 && errno != EEXIST) return Status::FromErrno(d);
  }
  BUILDFS_RETURN_IF_ERROR(CheckoutCommit(job.mirror, job.revision, work + "/src"));
  const std::vector<std::string> env = EnvFor(c, work, js);
  BUILDFS_RETURN_IF_ERROR(js.Take(o.progress));
  struct Slot {
    JobServer& js;
    ~Slot() { js.Give(); }
  } slot{js};
  for (const auto& p : c.patches) {
    Status applied = RunLogged("patch -p1 --batch --forward -i " + Quote(o.dir + "/" + p), work + "/src", env,
                               log, o.progress);
    if (!applied.ok() && applied.code() != ECANCELED) {
      return Status::Error(ECHILD, "patch " + p + " does not apply");
    }
    BUILDFS_RETURN_IF_ERROR(applied);
  }
  for (size_t d : job.all_deps) BUILDFS_RETURN_IF_ERROR(repo->Checkout(jobs[d].commit, work + "/sysroot"));
  for (const auto& command : CommandsOf(c)) {
    BUILDFS_RETURN_IF_ERROR(RunLogged(command, work + "/src", env, log, o.progress, js.fds()));
  }
  BUILDFS_ASSIGN_OR_RETURN(job.commit,
                           repo->CommitDirectory(work + "/install", job.ref, "component " + c.name + " " + job.key));
  return Status::Ok();
}

}  // namespace

Result<std::vector<BuildResult>> ListBuildResults(const Workspace& ws, const std::string& name) {
  BUILDFS_ASSIGN_OR_RETURN(auto repo, Repo::Open(ws.repo_path()));
  BUILDFS_ASSIGN_OR_RETURN(auto refs, repo->ListRefs("builds/" + name + "/result/"));
  BUILDFS_ASSIGN_OR_RETURN(ObjectReader reader, ObjectReader::Open(ws.repo_path()));
  std::vector<BuildResult> out;
  for (const auto& ref : refs) {
    BuildResult r;
    r.number = ref.substr(ref.rfind('/') + 1);
    BUILDFS_ASSIGN_OR_RETURN(r.commit, repo->ResolveRef(ref));
    BUILDFS_ASSIGN_OR_RETURN(CommitInfo info, reader.LoadCommit(r.commit));
    r.timestamp = info.timestamp;
    const size_t at = info.subject.find("(snapshot ");
    if (at != std::string::npos) r.snapshot = info.subject.substr(at + 10, 64);
    out.push_back(std::move(r));
  }
  // YYYYMMDD.N, newest first: by date, then by N as a number.
  auto key = [](const std::string& n) {
    return std::make_pair(n.substr(0, 8), std::atol(n.c_str() + std::min<size_t>(9, n.size())));
  };
  std::sort(out.begin(), out.end(), [&](const BuildResult& a, const BuildResult& b) { return key(a.number) > key(b.number); });
  return out;
}

std::string LogPath(const std::string& dir, const std::string& component) {
  return dir + "/logs/" + component + ".log";
}

Result<ResolveReport> ResolveBuild(const Workspace& ws, const std::string& name, const BuildOptions& o) {
  BUILDFS_ASSIGN_OR_RETURN(Resolved r, DoResolve(ws, name, o));
  return r.report;
}

Result<BuildReport> RunBuild(const Workspace& ws, const std::string& name, const BuildOptions& o) {
  BUILDFS_ASSIGN_OR_RETURN(Resolved r, DoResolve(ws, name, o));
  BuildReport report;
  report.number = r.report.number;
  const auto& comps = r.manifest.components;
  std::vector<Job> jobs(comps.size());
  BUILDFS_ASSIGN_OR_RETURN(auto repo, Repo::Open(ws.repo_path()));
  for (size_t i = 0; i < comps.size(); ++i) {
    Job& job = jobs[i];
    job.c = &comps[i];
    job.mirror = r.mirrors[i];
    job.revision = r.revisions[i];
    // Every dependency, direct or not, in dependency order.
    std::vector<bool> in(comps.size(), false);
    for (size_t d : r.manifest.deps[i]) {
      in[d] = true;
      for (size_t dd : jobs[d].all_deps) in[dd] = true;
    }
    for (size_t d = 0; d < i; ++d) {
      if (in[d]) job.all_deps.push_back(d);
    }
    Json keyed = {{"format", kBuilderFormat}, {"component", r.snapshot["components"][i]}};
    for (size_t d : r.manifest.deps[i]) keyed["depends-keys"].push_back(jobs[d].key);
    job.key = Sha256(keyed.dump());
    job.ref = "components/" + comps[i].name + "/" + job.key;
    if (auto done = repo->ResolveRef(job.ref); done.ok() && !done->empty()) {
      job.commit = done.value();
      job.reused = true;
    }
  }
  if (mkdir((o.dir + "/logs").c_str(), 0755) != 0 && errno != EEXIST) return Status::FromErrno(o.dir + "/logs");

  // Independent components at once, `jobs` of them; the first failure stops
  // the start of others and is what the build reports.
  const int parallel = o.jobs > 0 ? o.jobs : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const size_t to_build = static_cast<size_t>(std::count_if(jobs.begin(), jobs.end(), [](const Job& j) { return !j.reused; }));
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int> state(jobs.size(), 0);  // 0 waiting, 1 running, 2 done
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (jobs[i].reused) state[i] = 2;
  }
  BUILDFS_ASSIGN_OR_RETURN(JobServer js, JobServer::Make(parallel));
  Status failed;
  int running = 0;
  size_t started = 0;
  std::vector<std::thread> threads;
  {
    std::unique_lock lock(mu);
    for (;;) {
      for (size_t i = 0; i < jobs.size() && failed.ok() && running < parallel; ++i) {
        const bool ready = state[i] == 0 && std::all_of(r.manifest.deps[i].begin(), r.manifest.deps[i].end(),
                                                        [&](size_t d) { return state[d] == 2; });
        if (!ready) continue;
        state[i] = 1;
        ++running;
        ++started;
        Say(o, "building " + comps[i].name + " (" + std::to_string(started) + " of " +
                   std::to_string(to_build) + ")");
        threads.emplace_back([&, i] {
          Status st = BuildOne(ws, o, jobs[i], jobs, js);
          std::lock_guard done(mu);
          if (!st.ok() && failed.ok()) {
            failed = st.code() == ECHILD
                         ? Status::Error(ECHILD, "component " + comps[i].name + " failed: " + st.message() +
                                                     " (log: " + LogPath(o.dir, comps[i].name) + ")")
                         : st.With("component " + comps[i].name);
          }
          state[i] = 2;
          --running;
          cv.notify_all();
        });
      }
      if (running == 0) break;  // all done, or a failure and nothing left running
      cv.wait(lock);
    }
  }
  for (auto& t : threads) t.join();
  BUILDFS_RETURN_IF_ERROR(failed);
  if (o.progress.cancelled()) return Status::Error(ECANCELED, "cancelled");
  for (const auto& job : jobs) (job.reused ? report.reused : report.built).push_back(job.c->name);

  // Compose: every component's result, in dependency order, into result/
  // and the result commit.
  const std::string ref = "builds/" + name + "/result/" + report.number;
  auto existing = repo->ResolveRef(ref);
  const std::string result = o.dir + "/result";
  if (report.built.empty() && existing.ok() && !existing->empty() && DirHasEntries(result)) {
    report.result = existing.value();
    return report;
  }
  Say(o, "composing the result");
  const std::string staged = o.dir + "/.result-new";
  RemoveTree(staged);
  if (mkdir(staged.c_str(), 0755) != 0) return Status::FromErrno(staged);
  for (const auto& job : jobs) BUILDFS_RETURN_IF_ERROR(repo->Checkout(job.commit, staged));
  BUILDFS_ASSIGN_OR_RETURN(report.result,
                           repo->CommitDirectory(staged, ref, "build " + report.number + " of " + name +
                                                                  " (snapshot " + r.report.snapshot + ")"));
  RemoveTree(result);
  if (rename(staged.c_str(), result.c_str()) != 0) return Status::FromErrno(result);
  return report;
}

}  // namespace buildfs

#include "fs/store/workspace.h"

#include <dirent.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "fs/common/path.h"
#include "fs/store/repo.h"

namespace buildfs {
namespace {

Status MakeDir(const std::string& path, mode_t mode = 0755) {
  if (mkdir(path.c_str(), mode) != 0 && errno != EEXIST) return Status::FromErrno(path);
  return Status::Ok();
}

std::string RealPath(const std::string& p) {
  char buf[PATH_MAX];
  return realpath(p.c_str(), buf) ? std::string(buf) : std::string();
}

}  // namespace

namespace {

// `name` with control characters escaped, so an error stays on one line.
std::string Printable(const std::string& name) {
  std::string out;
  for (unsigned char c : name) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (std::iscntrl(c)) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

}  // namespace

Status ValidateBuildName(const std::string& name, const char* what) {
  auto bad = [&](const std::string& why) {
    return Status::Error(EINVAL,
                         std::string("invalid ") + what + " '" + Printable(name) + "': " + why);
  };
  if (name.empty()) return bad("empty");
  if (name.size() > 100) return bad("longer than 100 characters");
  if (name[0] == '-') return bad("starts with '-'");
  if (name[0] == '.') return bad("starts with '.'");
  if (name.find("..") != std::string::npos) return bad("contains '..'");
  for (unsigned char c : name) {
    if (std::isalnum(c) || c == '_' || c == '.' || c == '-') continue;
    if (c == '/') return bad("contains '/'");
    if (std::isspace(c)) return bad("contains whitespace");
    if (std::iscntrl(c) || c >= 0x80) return bad("contains a control or non-ASCII character");
    return bad(std::string("contains '") + static_cast<char>(c) +
               "' (names may hold letters, digits, '_', '.' and '-')");
  }
  static const char* kReserved[] = {"repo", "src", "cache"};
  for (const char* r : kReserved) {
    if (name == r) return bad("'" + name + "' is a workspace directory");
  }
  return Status::Ok();
}

Result<Workspace> Workspace::Init(const std::string& dir) {
  BUILDFS_RETURN_IF_ERROR(MakeDir(dir));
  std::string root = RealPath(dir);
  if (root.empty()) return Status::FromErrno(dir);
  struct stat st;
  if (stat((root + "/.buildfs").c_str(), &st) == 0) {
    return Status::Error(EEXIST, root + ": already a workspace");
  }
  Workspace ws(root);
  // repo/ first: if it fails nothing else of the workspace exists yet.
  if (stat(ws.repo_path().c_str(), &st) != 0) {
    auto repo = Repo::Create(ws.repo_path());
    if (!repo.ok()) return repo.status();
  }
  for (const auto& p : {ws.root_ + "/src", ws.cache_path(), ws.state_path() + ".tmp"}) {
    BUILDFS_RETURN_IF_ERROR(MakeDir(p));
  }
  std::string tmp = ws.state_path() + ".tmp";
  BUILDFS_RETURN_IF_ERROR(MakeDir(tmp + "/builds"));
  BUILDFS_RETURN_IF_ERROR(MakeDir(tmp + "/layers"));
  nlohmann::json config = {{"format", 1}};
  BUILDFS_RETURN_IF_ERROR(WriteFileAtomic(tmp + "/config.json", config.dump(2) + "\n"));
  // The state directory appears whole or not at all.
  if (rename(tmp.c_str(), ws.state_path().c_str()) != 0) return Status::FromErrno(ws.state_path());
  return ws;
}

Result<Workspace> Workspace::Find(const std::string& start) {
  std::string dir = RealPath(start);
  if (dir.empty()) return Status::FromErrno(start);
  for (;;) {
    struct stat st;
    if (stat((dir + "/.buildfs/config.json").c_str(), &st) == 0) return Workspace(dir);
    if (dir == "/" || dir.empty()) break;
    size_t slash = dir.rfind('/');
    dir = slash == 0 ? "/" : dir.substr(0, slash);
  }
  return Status::Error(ENOENT, "not inside a buildfs workspace (looked upward from " + start +
                                   "); hint: buildfs init DIR, or -C DIR");
}

std::string Workspace::BuildAt(const std::string& cwd) const {
  // The mount point may be dead (ENOTCONN), so work on the path string.
  std::string prefix = root_ + "/";
  if (cwd.rfind(prefix, 0) != 0) return "";
  std::string rest = cwd.substr(prefix.size());
  std::string name = rest.substr(0, rest.find('/'));
  return HasBuild(name) ? name : "";
}

bool Workspace::HasBuild(const std::string& name) const {
  if (!ValidateBuildName(name).ok()) return false;
  struct stat st;
  return stat((build_path(name) + "/build.json").c_str(), &st) == 0;
}

bool Workspace::HasBuildDir(const std::string& name) const {
  if (!ValidateBuildName(name).ok()) return false;
  struct stat st;
  return stat(build_path(name).c_str(), &st) == 0;
}

std::vector<std::string> Workspace::ListBuilds() const {
  std::vector<std::string> out;
  auto names = ListNames(state_path() + "/builds");
  if (!names.ok()) return out;
  for (auto& n : names.value()) {
    if (HasBuild(n)) out.push_back(std::move(n));
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<BuildInfo> Workspace::LoadBuild(const std::string& name) const {
  BUILDFS_RETURN_IF_ERROR(ValidateBuildName(name));
  const std::string path = build_path(name) + "/build.json";
  auto text = ReadFile(path);
  if (!text.ok()) {
    if (text.code() == ENOENT) return Status::Error(ENOENT, "no build named '" + name + "'");
    return text.status();
  }
  auto damaged = [&](const std::string& why) {
    return Status::Error(EUCLEAN, "build '" + name + "' is damaged: " + path + " " + why);
  };
  auto j = nlohmann::json::parse(text.value(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return damaged(text->empty() ? "is empty" : "is not valid JSON");
  }
  if (!j.is_object()) return damaged("does not hold a JSON object");
  auto strings = [&](const char* key, std::vector<std::string>* out) -> Status {
    if (!j.contains(key)) return Status::Ok();
    const auto& v = j[key];
    if (!v.is_array()) return damaged(std::string("has a \"") + key + "\" that is not a list");
    for (const auto& x : v) {
      if (!x.is_string())
        return damaged(std::string("has a \"") + key + "\" entry that is not a string");
      out->push_back(x.get<std::string>());
    }
    return Status::Ok();
  };
  BuildInfo info;
  info.name = name;
  if (!j.contains("base") || !j["base"].is_string() || j["base"].get<std::string>().size() != 64) {
    return damaged("names no base commit");
  }
  info.base = j["base"].get<std::string>();
  BUILDFS_RETURN_IF_ERROR(strings("layers", &info.layers));
  BUILDFS_RETURN_IF_ERROR(strings("pending_commit", &info.pending_commit));
  BUILDFS_RETURN_IF_ERROR(strings("pending_cache", &info.pending_cache));
  for (auto [key, out] : {std::pair{"pending_freeze", &info.pending_freeze},
                          std::pair{"pending_unfreeze", &info.pending_unfreeze}}) {
    if (!j.contains(key)) continue;
    if (!j[key].is_string())
      return damaged(std::string("has a \"") + key + "\" that is not a string");
    *out = j[key].get<std::string>();
  }
  return info;
}

std::string BuildJson(const BuildInfo& info) {
  nlohmann::json j = {
      {"format", 1}, {"name", info.name}, {"base", info.base}, {"layers", info.layers}};
  if (!info.pending_freeze.empty()) j["pending_freeze"] = info.pending_freeze;
  if (!info.pending_commit.empty()) j["pending_commit"] = info.pending_commit;
  if (!info.pending_cache.empty()) j["pending_cache"] = info.pending_cache;
  if (!info.pending_unfreeze.empty()) j["pending_unfreeze"] = info.pending_unfreeze;
  return j.dump(2) + "\n";
}

Status Workspace::SaveBuild(const BuildInfo& info) const {
  return WriteFileAtomic(build_path(info.name) + "/build.json", BuildJson(info));
}

}  // namespace buildfs

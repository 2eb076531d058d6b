#include "builder/manifest.h"

#include <algorithm>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "fs/store/workspace.h"

namespace buildfs {
namespace {

using Json = nlohmann::json;

Status Bad(const std::string& path, const std::string& why) {
  return Status::Error(EINVAL, path + ": " + why);
}

std::string TypeName(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::boolean: return "a boolean";
    case Json::value_t::string: return "a string";
    case Json::value_t::array: return "an array";
    case Json::value_t::object: return "an object";
    default: return "a number";
  }
}

Status NeedString(const Json& j, const std::string& path, std::string* out) {
  if (!j.is_string()) return Bad(path, "a string expected, not " + TypeName(j));
  *out = j.get<std::string>();
  if (out->empty()) return Bad(path, "empty");
  return Status::Ok();
}

Status NeedStrings(const Json& j, const std::string& path, std::vector<std::string>* out) {
  if (!j.is_array()) return Bad(path, "an array of strings expected, not " + TypeName(j));
  for (size_t i = 0; i < j.size(); ++i) {
    std::string s;
    BUILDFS_RETURN_IF_ERROR(NeedString(j[i], path + "[" + std::to_string(i) + "]", &s));
    out->push_back(std::move(s));
  }
  return Status::Ok();
}

Status NeedStringMap(const Json& j, const std::string& path, std::map<std::string, std::string>* out) {
  if (!j.is_object()) return Bad(path, "an object of strings expected, not " + TypeName(j));
  for (const auto& [key, value] : j.items()) {
    if (!value.is_string()) return Bad(path + "." + key, "a string expected, not " + TypeName(value));
    (*out)[key] = value.get<std::string>();
  }
  return Status::Ok();
}

// Refuses keys the manifest does not know.
Status OnlyKeys(const Json& j, const std::string& path, const std::set<std::string>& known) {
  for (const auto& [key, value] : j.items()) {
    if (!known.count(key)) return Bad(path.empty() ? key : path + "." + key, "unknown key");
  }
  return Status::Ok();
}

// "git:" dropped, a vcsconfig prefix expanded.
Result<std::string> ExpandSrc(std::string src, const std::map<std::string, std::string>& vcs,
                              const std::string& path) {
  auto strip_git = [](std::string s) { return s.rfind("git:", 0) == 0 ? s.substr(4) : s; };
  src = strip_git(src);
  const size_t colon = src.find(':');
  if (colon != std::string::npos && src.compare(colon, 3, "://") != 0) {
    auto it = vcs.find(src.substr(0, colon));
    if (it == vcs.end()) {
      return Bad(path, "no vcsconfig prefix \"" + src.substr(0, colon) + "\"");
    }
    src = strip_git(it->second) + src.substr(colon + 1);
  }
  if (src.find("://") == std::string::npos && src[0] != '/') {
    return Bad(path, "\"" + src + "\" is neither a URL nor an absolute path");
  }
  return src;
}

// The last part of a source: ".../glib.git" -> "glib".
std::string NameFromSrc(std::string src) {
  while (!src.empty() && src.back() == '/') src.pop_back();
  std::string last = src.substr(src.find_last_of("/:") + 1);
  if (last.size() > 4 && last.ends_with(".git")) last.resize(last.size() - 4);
  return last;
}

Status ParseComponent(const Json& j, const std::string& path, const Manifest& m,
                      const std::map<std::string, std::string>& vcs,
                      const std::vector<std::string>& top_opts, Component* c) {
  if (!j.is_object()) return Bad(path, "an object expected, not " + TypeName(j));
  BUILDFS_RETURN_IF_ERROR(OnlyKeys(j, path,
                                   {"name", "src", "branch", "tag", "revision", "depends",
                                    "build-system", "build-commands", "config-opts", "env",
                                    "patches"}));
  if (!j.contains("src")) return Bad(path, "no src");
  std::string src;
  BUILDFS_RETURN_IF_ERROR(NeedString(j["src"], path + ".src", &src));
  BUILDFS_ASSIGN_OR_RETURN(c->src, ExpandSrc(src, vcs, path + ".src"));
  if (j.contains("name")) {
    BUILDFS_RETURN_IF_ERROR(NeedString(j["name"], path + ".name", &c->name));
  } else {
    c->name = NameFromSrc(c->src);
  }
  Status valid = ValidateBuildName(c->name, "component name");
  if (!valid.ok()) return Bad(path + ".name", valid.message());
  (void)m;

  int pins = 0;
  for (auto [key, pin] : {std::pair{"branch", Component::Pin::kBranch},
                          std::pair{"tag", Component::Pin::kTag},
                          std::pair{"revision", Component::Pin::kRevision}}) {
    if (!j.contains(key)) continue;
    ++pins;
    c->pin = pin;
    BUILDFS_RETURN_IF_ERROR(NeedString(j[key], path + "." + key, &c->ref));
  }
  if (pins == 0) return Bad(path, "one of branch, tag or revision is needed");
  if (pins > 1) return Bad(path, "only one of branch, tag or revision may be given");
  if (c->pin == Component::Pin::kRevision &&
      (c->ref.size() != 40 || c->ref.find_first_not_of("0123456789abcdef") != std::string::npos)) {
    return Bad(path + ".revision", "a full commit id (40 lowercase hex digits) expected");
  }

  if (j.contains("depends")) BUILDFS_RETURN_IF_ERROR(NeedStrings(j["depends"], path + ".depends", &c->depends));
  const bool has_system = j.contains("build-system"), has_commands = j.contains("build-commands");
  if (has_system == has_commands) {
    return Bad(path, has_system ? "build-system and build-commands: give one, not both"
                                : "no build-system or build-commands");
  }
  if (has_system) {
    BUILDFS_RETURN_IF_ERROR(NeedString(j["build-system"], path + ".build-system", &c->build_system));
    if (c->build_system != "cmake" && c->build_system != "autotools" && c->build_system != "make") {
      return Bad(path + ".build-system",
                 "\"" + c->build_system + "\" is not one of cmake, autotools, make");
    }
    c->config_opts = top_opts;
    if (j.contains("config-opts")) {
      BUILDFS_RETURN_IF_ERROR(NeedStrings(j["config-opts"], path + ".config-opts", &c->config_opts));
    }
  } else {
    if (j.contains("config-opts")) return Bad(path + ".config-opts", "only with a build-system");
    BUILDFS_RETURN_IF_ERROR(
        NeedStrings(j["build-commands"], path + ".build-commands", &c->build_commands));
    if (c->build_commands.empty()) return Bad(path + ".build-commands", "empty");
  }
  if (j.contains("env")) BUILDFS_RETURN_IF_ERROR(NeedStringMap(j["env"], path + ".env", &c->env));
  if (j.contains("patches")) {
    BUILDFS_RETURN_IF_ERROR(NeedStrings(j["patches"], path + ".patches", &c->patches));
    for (size_t i = 0; i < c->patches.size(); ++i) {
      const std::string& p = c->patches[i];
      if (p[0] == '/' || p == ".." || p.rfind("../", 0) == 0 || p.find("/../") != std::string::npos) {
        return Bad(path + ".patches[" + std::to_string(i) + "]",
                   "a path inside the build (relative, without ..) expected");
      }
    }
  }
  return Status::Ok();
}

}  // namespace

Result<Manifest> ParseManifest(std::string_view text) {
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::parse_error& e) {
    // "... at line 3, column 7: syntax error ..." -> keep what says where and why.
    std::string what = e.what();
    const size_t at = what.find("at line");
    return Status::Error(EINVAL, "not JSON: " + (at == std::string::npos ? what : what.substr(at)));
  }
  if (!j.is_object()) return Bad("(top)", "an object expected, not " + TypeName(j));
  BUILDFS_RETURN_IF_ERROR(OnlyKeys(j, "", {"name", "vcsconfig", "config-opts", "components"}));
  Manifest m;
  if (j.contains("name")) BUILDFS_RETURN_IF_ERROR(NeedString(j["name"], "name", &m.name));
  std::map<std::string, std::string> vcs;
  if (j.contains("vcsconfig")) BUILDFS_RETURN_IF_ERROR(NeedStringMap(j["vcsconfig"], "vcsconfig", &vcs));
  std::vector<std::string> top_opts;
  if (j.contains("config-opts")) BUILDFS_RETURN_IF_ERROR(NeedStrings(j["config-opts"], "config-opts", &top_opts));
  if (!j.contains("components")) return Bad("components", "missing");
  const Json& list = j["components"];
  if (!list.is_array()) return Bad("components", "an array expected, not " + TypeName(list));
  if (list.empty()) return Bad("components", "empty");

  std::vector<Component> given(list.size());
  std::map<std::string, size_t> by_name;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string path = "components[" + std::to_string(i) + "]";
    BUILDFS_RETURN_IF_ERROR(ParseComponent(list[i], path, m, vcs, top_opts, &given[i]));
    auto [it, fresh] = by_name.emplace(given[i].name, i);
    if (!fresh) {
      return Bad(path + ".name", "\"" + given[i].name + "\" is also the name of components[" +
                                     std::to_string(it->second) + "]");
    }
  }
  for (size_t i = 0; i < given.size(); ++i) {
    for (size_t d = 0; d < given[i].depends.size(); ++d) {
      const std::string path = "components[" + std::to_string(i) + "].depends[" + std::to_string(d) + "]";
      if (!by_name.count(given[i].depends[d])) {
        return Bad(path, "no component named \"" + given[i].depends[d] + "\"");
      }
      if (given[i].depends[d] == given[i].name) return Bad(path, "a component cannot depend on itself");
    }
  }
  // Dependency order, stable: a depth-first walk in the manifest's order.
  std::vector<int> state(given.size(), 0);  // 0 new, 1 on the path, 2 done
  std::vector<size_t> order, trail;
  std::function<Status(size_t)> visit = [&](size_t i) -> Status {
    if (state[i] == 2) return Status::Ok();
    if (state[i] == 1) {
      std::string cycle;
      auto from = std::find(trail.begin(), trail.end(), i);
      for (auto it = from; it != trail.end(); ++it) cycle += given[*it].name + " -> ";
      return Bad("components[" + std::to_string(i) + "].depends",
                 "a dependency cycle: " + cycle + given[i].name);
    }
    state[i] = 1;
    trail.push_back(i);
    for (const auto& dep : given[i].depends) BUILDFS_RETURN_IF_ERROR(visit(by_name[dep]));
    trail.pop_back();
    state[i] = 2;
    order.push_back(i);
    return Status::Ok();
  };
  for (size_t i = 0; i < given.size(); ++i) BUILDFS_RETURN_IF_ERROR(visit(i));
  std::vector<size_t> position(given.size());
  for (size_t k = 0; k < order.size(); ++k) position[order[k]] = k;
  for (size_t k : order) {
    std::vector<size_t> deps;
    for (const auto& dep : given[k].depends) deps.push_back(position[by_name[dep]]);
    m.deps.push_back(std::move(deps));
    m.components.push_back(std::move(given[k]));
  }
  return m;
}

Result<Manifest> LoadManifest(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::Error(ENOENT, path + ": cannot read");
  std::stringstream text;
  text << in.rdbuf();
  auto m = ParseManifest(text.str());
  if (!m.ok()) return Status::Error(m.code(), path + ": " + m.status().message());
  return m;
}

}  // namespace buildfs

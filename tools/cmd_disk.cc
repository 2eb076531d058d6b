// buildfs disk create|list|put: builddisks, ext4 images in cache/disks/.
#include <cctype>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "fs/lifecycle/disk.h"
#include "tools/commands.h"

namespace buildfs {
namespace {

// "2G", "512M", "64k", "1048576": bytes (binary units).
Result<uint64_t> ParseSize(const std::string& text) {
  size_t end = 0;
  unsigned long long n = 0;
  try {
    n = std::stoull(text, &end);
  } catch (...) {
    end = 0;
  }
  if (end == 0 || text[0] == '-') return Status::Error(EINVAL, "size '" + text + "': not a number");
  std::string unit = text.substr(end);
  int shift = 0;
  if (unit.size() == 1 ||
      (unit.size() == 3 && (unit.substr(1) == "iB" || unit.substr(1) == "ib"))) {
    switch (std::toupper(static_cast<unsigned char>(unit[0]))) {
      case 'K':
        shift = 10;
        break;
      case 'M':
        shift = 20;
        break;
      case 'G':
        shift = 30;
        break;
      case 'T':
        shift = 40;
        break;
      default:
        return Status::Error(EINVAL, "size '" + text + "': unknown unit (K, M, G or T)");
    }
  } else if (!unit.empty()) {
    return Status::Error(EINVAL, "size '" + text + "': unknown unit (K, M, G or T)");
  }
  if (n > (~0ull >> shift)) return Status::Error(EINVAL, "size '" + text + "': too large");
  return static_cast<uint64_t>(n) << shift;
}

std::string Human(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

}  // namespace

void RegisterDisk(CLI::App& app, Context& ctx) {
  auto* disk = app.add_subcommand(
      "disk", "Builddisks: ext4 images in the shared cache (cache/disks/NAME.img)");
  disk->require_subcommand(1);

  struct CreateOptions {
    std::string name, size, from_dir, build;
    bool from_result = false;
  };
  auto c = std::make_shared<CreateOptions>();
  auto* create = disk->add_subcommand(
      "create",
      "Make cache/disks/NAME.img, an ext4 image of the build's tree (mke2fs -d, no root needed)");
  create->add_option("NAME", c->name, "Disk name")->required();
  create->add_option("--size", c->size, "Image size, e.g. 2G or 512M")->required();
  auto* from_result =
      create->add_flag("--from-result", c->from_result, "Image of the build's result/");
  create->add_option("--from-dir", c->from_dir, "Image of this directory instead of a build")
      ->excludes(from_result);
  create->add_option("-b,--build", c->build, "The build (default: the one this is run in)");
  create->callback([c, &ctx] {
    uint64_t size = Check(ParseSize(c->size));
    DiskSource source;
    if (!c->from_dir.empty()) {
      source.kind = DiskSource::kDirectory;
      source.dir = c->from_dir;
    } else {
      source.kind = c->from_result ? DiskSource::kBuildResult : DiskSource::kBuildTree;
      source.build = ctx.BuildName(c->build);
    }
    Status st =
        CreateDisk(ctx.workspace(), c->name, size, source, ctx.LongWork("making the image"));
    ctx.Done();
    Check(st);
    std::printf("made %s (%s)\n", DiskPath(ctx.workspace(), c->name).c_str(), Human(size).c_str());
  });

  struct ListOptions {
    std::string build;
    bool json = false;
  };
  auto l = std::make_shared<ListOptions>();
  auto* list = disk->add_subcommand(
      "list",
      "Images in the shared cache and in this build: size, and how much this build changed");
  list->add_option("-b,--build", l->build, "The build (default: the one this is run in, if any)");
  list->add_flag("--json", l->json, "Print a JSON array");
  list->callback([l, &ctx] {
    std::string build = l->build.empty() ? ctx.BuildHere() : ctx.BuildName(l->build);
    auto disks = Check(ListDisks(ctx.workspace(), build));
    if (l->json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& d : disks) {
        nlohmann::json j = {{"name", d.name},
                            {"path", DiskPath(ctx.workspace(), d.name)},
                            {"shared", d.shared},
                            {"shared_size", d.shared_size},
                            {"size", d.size}};
        if (!build.empty()) {
          j["build"] = build;
          j["private_copy"] = d.private_copy;
          j["deleted"] = d.deleted;
          j["private_bytes"] = d.private_bytes;
        }
        out.push_back(j);
      }
      std::printf("%s\n", out.dump(2).c_str());
      return;
    }
    if (disks.empty()) {
      std::printf("no disks; hint: buildfs disk create NAME --size 2G\n");
      return;
    }
    std::printf("%-20s %-12s %s\n", "NAME", "SIZE",
                build.empty() ? "" : ("IN BUILD " + build).c_str());
    for (const auto& d : disks) {
      std::string here;
      if (!build.empty()) {
        here = d.deleted        ? "deleted"
               : d.private_copy ? "changed: " + Human(d.private_bytes) + " private"
                                : "unchanged";
      }
      std::printf("%-20s %-12s %s\n", d.name.c_str(), Human(d.size).c_str(), here.c_str());
    }
  });

  struct PutOptions {
    std::string name, build;
  };
  auto p = std::make_shared<PutOptions>();
  auto* put = disk->add_subcommand(
      "put",
      "Publish this build's version of cache/disks/NAME.img into the shared cache, atomically");
  put->add_option("NAME", p->name, "Disk name")->required();
  put->add_option("-b,--build", p->build, "The build (default: the one this is run in)");
  put->callback([p, &ctx] {
    std::string build = ctx.BuildName(p->build);
    Status st = PutDisk(ctx.workspace(), build, p->name, ctx.LongWork("publishing"));
    ctx.Done();
    Check(st);
    std::printf("published %s from build %s\n", DiskPath(ctx.workspace(), p->name).c_str(),
                build.c_str());
  });
}

}  // namespace buildfs

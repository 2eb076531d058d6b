// buildfs new NAME [--from-dir DIR | --manifest FILE]: make a build whose
// base is a tree, or a manifest (and its patches) to build.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "builder/manifest.h"
#include "fs/common/path.h"
#include "fs/lifecycle/builds.h"
#include "fs/lifecycle/mounter.h"
#include "tools/commands.h"

namespace buildfs {

void RegisterNew(CLI::App& app, Context& ctx) {
  struct Options {
    std::string name;
    std::string from_dir;
    std::string manifest;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("new", "Make a build; its base is DIR committed into the repo (or empty)");
  cmd->add_option("NAME", o->name, "Name of the new build")->required();
  auto* from = cmd->add_option("--from-dir", o->from_dir, "Commit this tree as the build's base")
                   ->option_text("DIR");
  cmd->add_option("--manifest", o->manifest,
                  "The build's tree starts with this manifest as manifest.json (and its patches); "
                  "the build is mounted")
      ->option_text("FILE")
      ->excludes(from);
  cmd->callback([o, &ctx] {
    Check(ValidateBuildName(o->name));
    const Workspace& ws = ctx.workspace();
    std::string from_dir = o->from_dir;
    std::string staged;
    if (!o->manifest.empty()) {
      // Validated first; then the manifest and its patches, as a tree.
      Manifest m = Check(LoadManifest(o->manifest));
      // In the trash: what a killed `new` left goes with the next command.
      const std::string trash = ws.state_path() + "/trash";
      mkdir(trash.c_str(), 0700);
      staged = trash + "/" + std::to_string(getpid()) + "-manifest";
      RemoveTree(staged);
      const std::string dir = SplitPath(o->manifest).first;
      auto stage = [&]() -> Status {
        if (mkdir(staged.c_str(), 0755) != 0) return Status::FromErrno(staged);
        BUILDFS_ASSIGN_OR_RETURN(std::string text, ReadFile(o->manifest));
        BUILDFS_RETURN_IF_ERROR(WriteFileAtomic(staged + "/manifest.json", text));
        for (const auto& c : m.components) {
          for (const auto& p : c.patches) {
            auto patch = ReadFile(JoinPath(dir.empty() ? "." : dir, p));
            if (!patch.ok()) return patch.status().With("component " + c.name + ": patch " + p);
            for (size_t at = p.find('/'); at != std::string::npos; at = p.find('/', at + 1)) {
              mkdir((staged + "/" + p.substr(0, at)).c_str(), 0755);
            }
            BUILDFS_RETURN_IF_ERROR(WriteFileAtomic(staged + "/" + p, patch.value()));
          }
        }
        return Status::Ok();
      };
      Status st = stage();
      if (!st.ok()) {
        RemoveTree(staged);
        Fail(st);
      }
      from_dir = staged;
    }
    auto made = CreateBuild(ws, o->name, from_dir, ctx.LongWork("importing"),
                            o->manifest.empty() ? "" : "manifest " + o->manifest);
    ctx.Done();
    if (!staged.empty()) RemoveTree(staged);
    BuildInfo info = Check(std::move(made));
    std::printf("created build %s (base %s)\n", info.name.c_str(), info.base.substr(0, 12).c_str());
    if (!o->manifest.empty()) {
      MountRequest request;
      request.name = o->name;
      Check(MountBuild(ws, request, ctx.Launcher()));
      std::printf("mounted %s at %s; next: cd %s && buildfs build\n", o->name.c_str(),
                  ws.mountpoint(o->name).c_str(), ws.mountpoint(o->name).c_str());
    }
  });
}

}  // namespace buildfs

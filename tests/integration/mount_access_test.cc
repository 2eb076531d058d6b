// End-to-end tests of a mounted build (fixture: mount_fixture.h): extended
// attributes, statfs, and permissions as another user sees them.
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fs/common/fd.h"
#include "tests/integration/mount_fixture.h"

namespace buildfs::testing {
namespace {

// ----------------------------------------------------------------- xattrs

TEST_F(MountTest, SetxattrOnBaseFileIsListedAndReadBack) {
  SetXattr(M("hello.txt"), "user.new", "value");
  int err;
  EXPECT_EQ(GetXattr(M("hello.txt"), "user.new", &err), "value");
  EXPECT_EQ(err, 0);
  EXPECT_EQ(Sorted(ListXattrs(M("hello.txt"))), std::vector<std::string>{"user.new"});
  SetXattr(M("attrs.txt"), "user.color", "red");
  EXPECT_EQ(GetXattr(M("attrs.txt"), "user.color", &err), "red");
  EXPECT_EQ(Sorted(ListXattrs(M("attrs.txt"))),
            (std::vector<std::string>{"user.binary", "user.color"}));
}

TEST_F(MountTest, RemovexattrOfBaseXattrHidesIt) {
  ASSERT_EQ(lremovexattr(M("attrs.txt").c_str(), "user.color"), 0) << strerror(errno);
  int err;
  GetXattr(M("attrs.txt"), "user.color", &err);
  EXPECT_EQ(err, ENODATA);
  EXPECT_EQ(ListXattrs(M("attrs.txt")), std::vector<std::string>{"user.binary"});
  EXPECT_EQ(ErrnoOf(lremovexattr(M("attrs.txt").c_str(), "user.color")), ENODATA);
}

TEST_F(MountTest, SetxattrCreateFlagFailsWithEexistWhenPresent) {
  EXPECT_EQ(ErrnoOf(lsetxattr(M("attrs.txt").c_str(), "user.color", "x", 1, XATTR_CREATE)), EEXIST);
  int err;
  EXPECT_EQ(GetXattr(M("attrs.txt"), "user.color", &err), "blue");
}

TEST_F(MountTest, SetxattrReplaceFlagFailsWithEnodataWhenAbsent) {
  EXPECT_EQ(ErrnoOf(lsetxattr(M("hello.txt").c_str(), "user.none", "x", 1, XATTR_REPLACE)),
            ENODATA);
}

TEST_F(MountTest, XattrOnBaseDirectoryCanBeChanged) {
  SetXattr(M("attrdir"), "user.kind", "changed");
  int err;
  EXPECT_EQ(GetXattr(M("attrdir"), "user.kind", &err), "changed");
  EXPECT_EQ(ErrnoOf(lremovexattr(M("attrdir").c_str(), "user.kind")), 0);
  EXPECT_EQ(ListXattrs(M("attrdir")), std::vector<std::string>{});
}

// ----------------------------------------------------------------- statfs

TEST_F(MountTest, StatfsReportsAFuseFilesystemWithSpace) {
  struct statfs st;
  ASSERT_EQ(statfs(root_.c_str(), &st), 0) << strerror(errno);
  EXPECT_EQ(st.f_type, kFuseSuperMagic);
  EXPECT_GT(st.f_bsize, 0);
  EXPECT_GT(st.f_blocks, 0u);
  EXPECT_LE(st.f_bavail, st.f_blocks);
  EXPECT_GT(st.f_namelen, 0);
}

// ------------------------------------------------------------ permissions

TEST_F(MountTest, OtherUserCanReadButNotWriteRootOwnedFile) {
  const std::string path = M("root-file.txt");
  EXPECT_EQ(RunAsUser(1000, 1000, [&] { return ErrnoOf(open(path.c_str(), O_WRONLY)); }), EACCES);
  EXPECT_EQ(RunAsUser(1000, 1000, [&] { return ErrnoOf(access(path.c_str(), W_OK)); }), EACCES);
  EXPECT_EQ(RunAsUser(1000, 1000, [&] { return ReadFile(path) == "owned by root\n" ? 0 : 1; }), 0);
  EXPECT_EQ(ReadFile(path), "owned by root\n");
}

TEST_F(MountTest, OtherUserCannotReadPrivateFile) {
  const std::string path = M("private.txt");
  EXPECT_EQ(RunAsUser(1000, 1000, [&] { return ErrnoOf(open(path.c_str(), O_RDONLY)); }), EACCES);
}

TEST_F(MountTest, OwnerCanWriteOwnBaseFileAndKeepsOwnership) {
  const std::string path = M("user-file.txt");
  EXPECT_EQ(RunAsUser(1000, 1000,
                      [&] {
                        int fd = open(path.c_str(), O_WRONLY | O_APPEND);
                        if (fd < 0) return errno;
                        int rc = write(fd, "more\n", 5) == 5 ? 0 : errno;
                        close(fd);
                        return rc;
                      }),
            0);
  EXPECT_EQ(ReadFile(path), "owned by uid 1000\nmore\n");
  EXPECT_EQ(Lstat(path).st_uid, 1000u);
  EXPECT_EQ(Lstat(path).st_gid, 1000u);
}

TEST_F(MountTest, FileCreatedByOtherUserIsOwnedByThatUser) {
  const std::string path = M("sticky/by-user.txt");
  EXPECT_EQ(RunAsUser(1000, 1000,
                      [&] {
                        int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
                        if (fd < 0) return errno;
                        close(fd);
                        return 0;
                      }),
            0);
  struct stat st = Lstat(path);
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_gid, 1000u);
}

TEST_F(MountTest, OtherUserCannotCreateInRootOwnedDirectory) {
  const std::string path = M("sub/by-user.txt");
  EXPECT_EQ(
      RunAsUser(1000, 1000, [&] { return ErrnoOf(open(path.c_str(), O_WRONLY | O_CREAT, 0644)); }),
      EACCES);
  EXPECT_EQ(LstatErrno(path), ENOENT);
}

TEST_F(MountTest, StickyDirectoryStopsOtherUserFromRemovingRootsFile) {
  const std::string path = M("sticky/root-file.txt");
  EXPECT_EQ(RunAsUser(1000, 1000, [&] { return ErrnoOf(unlink(path.c_str())); }), EPERM);
  EXPECT_EQ(LstatErrno(path), 0);
}

TEST_F(MountTest, ExecOnlyDirectoryAllowsLookupButNotListing) {
  const std::string dir = M("exec-only-dir");
  EXPECT_EQ(
      RunAsUser(1000, 1000, [&] { return ErrnoOf(open(dir.c_str(), O_RDONLY | O_DIRECTORY)); }),
      EACCES);
  EXPECT_EQ(
      RunAsUser(1000, 1000,
                [&] { return ReadFile(dir + "/secret.txt") == "found by name only\n" ? 0 : 1; }),
      0);
}

TEST_F(MountTest, DirectoryWithoutSearchBitRefusesOtherUser) {
  const std::string path = M("readonly-dir/inner.txt");
  EXPECT_EQ(RunAsUser(1000, 1000, [&] { return ErrnoOf(open(path.c_str(), O_RDONLY)); }), EACCES);
  EXPECT_EQ(ReadFile(path), "inside a 0444 directory\n");  // root may
}

}  // namespace
}  // namespace buildfs::testing

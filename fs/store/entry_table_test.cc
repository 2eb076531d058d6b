// EncodeEntries / DecodeEntries: the table round-trips exactly and stays small.
#include "fs/store/entry_table.h"

#include <gtest/gtest.h>

#include "fs/testing/status_testing.h"

namespace buildfs {
namespace {

EntryRecord T(time_t m, long mn, time_t a, long an, uint64_t ino = 0) {
  EntryRecord e;
  e.mtime = {m, mn};
  e.atime = {a, an};
  e.ino = ino;
  return e;
}

TEST(EntryTableTest, RoundTripsEveryFieldWithNanoseconds) {
  EntryTable table = {T(1700000000, 123456789, 1700000500, 5, 0xfedcba9876543210ull),
                      T(0, 0, 0, 0), T(-86400, 999999999, 1, 1), T(1577836800, 0, 1577836800, 0, 42)};
  ASSERT_OK_AND_ASSIGN(EntryTable back, DecodeEntries(EncodeEntries(table)));
  EXPECT_EQ(back, table);
}

TEST(EntryTableTest, AttributesRoundTrip) {
  EntryRecord file = T(1, 2, 3, 4);
  file.has_attr = true;
  file.has_xattrs = true;
  file.mode = 0100644;
  file.uid = 1000;
  file.gid = 1001;
  file.size = 123456789012ull;
  EntryRecord dev = T(5, 6, 5, 6, 7);
  dev.has_attr = true;
  dev.mode = 020620;
  dev.rdev = (4ull << 8) | 1;
  EntryTable table = {T(0, 0, 0, 0), file, dev};
  ASSERT_OK_AND_ASSIGN(EntryTable back, DecodeEntries(EncodeEntries(table)));
  EXPECT_EQ(back, table);
}

TEST(EntryTableTest, AnEmptyTableRoundTrips) {
  ASSERT_OK_AND_ASSIGN(EntryTable back, DecodeEntries(EncodeEntries({})));
  EXPECT_TRUE(back.empty());
}

TEST(EntryTableTest, FilesOfATarballTakeAFewBytesEach) {
  // Whole seconds, atime == mtime, close together: what an unpacked release looks like.
  EntryTable table;
  for (int i = 0; i < 1000; ++i) table.push_back(T(1700000000 + i % 50, 0, 1700000000 + i % 50, 0));
  EXPECT_LT(EncodeEntries(table).size(), 4000u);
}

TEST(EntryTableTest, DamagedDataIsRefused) {
  std::string data = EncodeEntries({T(1, 2, 3, 4, 5)});
  EXPECT_ERRNO(DecodeEntries(data.substr(0, data.size() - 1)), EUCLEAN);
  EXPECT_ERRNO(DecodeEntries(data + "x"), EUCLEAN);
  EXPECT_ERRNO(DecodeEntries(""), EUCLEAN);
  data[0] = 9;  // another version
  EXPECT_ERRNO(DecodeEntries(data), EUCLEAN);
}

}  // namespace
}  // namespace buildfs

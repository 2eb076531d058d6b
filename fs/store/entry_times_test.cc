// EncodeTimes / DecodeTimes: the table round-trips exactly and stays small.
#include "fs/store/entry_times.h"

#include <gtest/gtest.h>

#include "fs/testing/status_testing.h"

namespace buildfs {
namespace {

EntryTimes T(time_t m, long mn, time_t a, long an, uint64_t ino = 0) {
  EntryTimes e;
  e.mtime = {m, mn};
  e.atime = {a, an};
  e.ino = ino;
  return e;
}

TEST(EntryTimesTest, RoundTripsEveryFieldWithNanoseconds) {
  TimesTable table = {T(1700000000, 123456789, 1700000500, 5, 0xfedcba9876543210ull),
                      T(0, 0, 0, 0), T(-86400, 999999999, 1, 1), T(1577836800, 0, 1577836800, 0, 42)};
  ASSERT_OK_AND_ASSIGN(TimesTable back, DecodeTimes(EncodeTimes(table)));
  EXPECT_EQ(back, table);
}

TEST(EntryTimesTest, AnEmptyTableRoundTrips) {
  ASSERT_OK_AND_ASSIGN(TimesTable back, DecodeTimes(EncodeTimes({})));
  EXPECT_TRUE(back.empty());
}

TEST(EntryTimesTest, FilesOfATarballTakeAFewBytesEach) {
  // Whole seconds, atime == mtime, close together: what an unpacked release looks like.
  TimesTable table;
  for (int i = 0; i < 1000; ++i) table.push_back(T(1700000000 + i % 50, 0, 1700000000 + i % 50, 0));
  EXPECT_LT(EncodeTimes(table).size(), 4000u);
}

TEST(EntryTimesTest, DamagedDataIsRefused) {
  std::string data = EncodeTimes({T(1, 2, 3, 4, 5)});
  EXPECT_ERRNO(DecodeTimes(data.substr(0, data.size() - 1)), EUCLEAN);
  EXPECT_ERRNO(DecodeTimes(data + "x"), EUCLEAN);
  EXPECT_ERRNO(DecodeTimes(""), EUCLEAN);
  data[0] = 9;  // another version
  EXPECT_ERRNO(DecodeTimes(data), EUCLEAN);
}

}  // namespace
}  // namespace buildfs

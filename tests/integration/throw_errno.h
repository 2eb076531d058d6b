// ThrowErrno: the one way the harness reports a failed system call. Tests
// let such exceptions escape; GoogleTest records them as failures.
#pragma once

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

namespace buildfs::testing {

[[noreturn]] inline void ThrowErrno(std::string_view what, const std::string& path,
                                    int err = errno) {
  throw std::runtime_error(std::string(what) + " " + path + ": " + std::strerror(err));
}

}  // namespace buildfs::testing

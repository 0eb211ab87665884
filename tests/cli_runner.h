// Runs the owf binary for end-to-end CLI tests (OWF_BINARY is set by tests/CMakeLists.txt).
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace owf {

struct CliRun {
  int code;         // exit status, -1 if it did not exit normally
  std::string out;  // stdout (and stderr unless asked not to)
};

inline CliRun Owf(const std::string& args, bool with_stderr = true) {
  const std::string cmd = std::string(OWF_BINARY) + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null");
  CliRun r{-1, ""};
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace owf

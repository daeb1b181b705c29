// A minimal test harness for the native test programs: named cases, CHECK macros that record the
// first failure of a case without stopping the run, and the closing "N passed, N failed" line.
#pragma once
#include <cstdio>
#include <exception>
#include <functional>
#include <string>
#include <vector>

namespace harness {

struct Case {
  std::string name;
  std::function<void()> fn;
};

inline std::vector<Case>& cases() {
  static std::vector<Case> c;
  return c;
}
inline std::string& current_failure() {
  static std::string s;
  return s;
}

struct Register {
  Register(const char* name, std::function<void()> fn) { cases().push_back({name, std::move(fn)}); }
};

inline void note_failure(const char* file, int line, const std::string& what) {
  if (current_failure().empty()) current_failure() = std::string(file) + ":" + std::to_string(line) + ": " + what;
}

// Runs every case; returns the process exit code (0 when all passed).
inline int run_all() {
  int passed = 0, failed = 0;
  for (auto& c : cases()) {
    current_failure().clear();
    try {
      c.fn();
    } catch (const std::exception& e) {
      note_failure("exception", 0, e.what());
    }
    if (current_failure().empty()) {
      ++passed;
      std::printf("ok   %s\n", c.name.c_str());
    } else {
      ++failed;
      std::printf("FAIL %s: %s\n", c.name.c_str(), current_failure().c_str());
    }
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace harness

#define TEST_CASE_CAT2(a, b) a##b
#define TEST_CASE_CAT(a, b) TEST_CASE_CAT2(a, b)
#define TEST_CASE(name)                                                                   \
  static void TEST_CASE_CAT(test_fn_, __LINE__)();                                         \
  static harness::Register TEST_CASE_CAT(test_reg_, __LINE__)(name, TEST_CASE_CAT(test_fn_, __LINE__)); \
  static void TEST_CASE_CAT(test_fn_, __LINE__)()
#define CHECK(cond)                                                   \
  do {                                                                \
    if (!(cond)) harness::note_failure(__FILE__, __LINE__, #cond);    \
  } while (0)
#define CHECK_MSG(cond, msg)                                          \
  do {                                                                \
    if (!(cond)) harness::note_failure(__FILE__, __LINE__, (msg));    \
  } while (0)

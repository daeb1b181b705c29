// Errors thrown by native code (N-API layer, CPU kernels, CUDA launchers) as plain C++ exceptions.
// The N-API boundary (check.h) turns each kind into the matching typed JS class exported by
// lib/errors.ts, so no C++ exception ever crosses into V8 and nothing aborts the process.
#pragma once
#include <stdexcept>
#include <string>

namespace mamba {

// Keep in step with ERROR_KINDS in lib/errors.ts (the index is the kind).
enum class ErrorKind : int { Argument = 0, Shape, DType, Device, OutOfMemory, Disposed, Internal };

struct Error : std::runtime_error {
  ErrorKind kind;
  std::string fn, arg;
  Error(ErrorKind k, std::string function, std::string argument, const std::string& message)
      : std::runtime_error(message), kind(k), fn(std::move(function)), arg(std::move(argument)) {}
};

[[noreturn]] inline void fail(ErrorKind k, const std::string& fn, const std::string& arg, const std::string& msg) {
  throw Error(k, fn, arg, msg);
}

}  // namespace mamba

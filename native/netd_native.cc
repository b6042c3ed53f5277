// netd_native: the few syscalls Node does not expose and netd needs to plumb container namespaces.
//
//   setns(fd, nstype)                  move the calling (main) thread into the namespace behind fd
//   withNetns(fd, fn)                  run fn with the main thread inside netns fd, then come back —
//                                      also when fn throws (the exception is rethrown afterwards)
//   unshareNet()                       give the main thread a new, empty network namespace
//   mount(source, target, fstype, flags, data)
//   umount2(target, flags)
//   nsType(fd)                         the CLONE_NEW* type of the namespace behind fd (ioctl NS_GET_NSTYPE)
//
// Namespace changes made here are per thread: only Node's main thread moves. libuv's thread pool (async
// fs, dns.lookup, ...) stays where it was, so code run inside withNetns must be synchronous. A netlink
// socket opened inside withNetns stays bound to that namespace for its whole life.
//
// Errors are JavaScript Errors with `code` (errno name, e.g. "EPERM"), `errno` (the number) and
// `syscall`. The build defines NAPI_DISABLE_CPP_EXCEPTIONS: failures are reported by throwing into the
// JS engine and returning an empty value, never by C++ exceptions.

#include <napi.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

namespace {

const char kThreadNetns[] = "/proc/thread-self/ns/net";

// Builds an Error shaped like Node's own system errors: "<syscall> <CODE>: <message>".
Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const std::string& detail = "") {
  const char* name = strerrorname_np(err);
  std::string code = name != nullptr ? name : ("E" + std::to_string(err));
  std::string message = std::string(syscall) + " " + code + ": " + strerror(err);
  if (!detail.empty()) message += " (" + detail + ")";
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  error.Set("errno", Napi::Number::New(env, -err));
  error.Set("syscall", Napi::String::New(env, syscall));
  return error;
}

Napi::Value ThrowErrno(Napi::Env env, int err, const char* syscall, const std::string& detail = "") {
  ErrnoError(env, err, syscall, detail).ThrowAsJavaScriptException();
  return Napi::Value();
}

Napi::Value ThrowType(Napi::Env env, const char* message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  return Napi::Value();
}

// Reads argument i as a non-negative 32-bit integer (an fd or a flag word); false if it is not one.
bool ArgUint(const Napi::CallbackInfo& info, size_t i, uint32_t* out) {
  if (info.Length() <= i || !info[i].IsNumber()) return false;
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= 0 && v <= 4294967295.0) || v != static_cast<double>(static_cast<uint32_t>(v))) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

// Reads argument i as a string, or as "absent" when it is null/undefined (mount's optional arguments).
bool ArgOptString(const Napi::CallbackInfo& info, size_t i, std::string* out, bool* present) {
  if (info.Length() <= i || info[i].IsNull() || info[i].IsUndefined()) {
    *present = false;
    return true;
  }
  if (!info[i].IsString()) return false;
  *out = info[i].As<Napi::String>().Utf8Value();
  *present = true;
  return true;
}

Napi::Value SetNs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t fd, nstype;
  if (!ArgUint(info, 0, &fd) || !ArgUint(info, 1, &nstype)) {
    return ThrowType(env, "setns(fd, nstype): fd and nstype must be non-negative integers");
  }
  if (setns(static_cast<int>(fd), static_cast<int>(nstype)) != 0) return ThrowErrno(env, errno, "setns");
  return env.Undefined();
}

Napi::Value WithNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t fd;
  if (!ArgUint(info, 0, &fd)) return ThrowType(env, "withNetns(fd, fn): fd must be a non-negative integer");
  if (info.Length() < 2 || !info[1].IsFunction()) return ThrowType(env, "withNetns(fd, fn): fn must be a function");
  Napi::Function fn = info[1].As<Napi::Function>();

  // Remember where the main thread is now, so we can come back.
  int original = open(kThreadNetns, O_RDONLY | O_CLOEXEC);
  if (original < 0) return ThrowErrno(env, errno, "open", kThreadNetns);
  if (setns(static_cast<int>(fd), CLONE_NEWNET) != 0) {
    int err = errno;
    close(original);
    return ThrowErrno(env, err, "setns");
  }

  // With C++ exceptions disabled a throwing fn yields an empty value and leaves the JS exception
  // pending; restoring below does not touch the JS engine, so the exception simply propagates.
  Napi::Value result = fn.Call(env.Undefined(), {});

  if (setns(original, CLONE_NEWNET) != 0) {
    // The main thread is stranded in a foreign namespace. Every later netlink socket, bind mount or
    // /proc/thread-self lookup would silently act there, so stopping is the only safe answer.
    int err = errno;
    fprintf(stderr, "netd_native: withNetns could not restore the original network namespace: %s\n", strerror(err));
    abort();
  }
  close(original);
  return result;
}

Napi::Value UnshareNet(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (unshare(CLONE_NEWNET) != 0) return ThrowErrno(env, errno, "unshare");
  return env.Undefined();
}

Napi::Value Mount(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string source, target, fstype, data;
  bool hasSource, hasTarget, hasFstype, hasData;
  uint32_t flags;
  if (!ArgOptString(info, 0, &source, &hasSource) || !ArgOptString(info, 1, &target, &hasTarget) || !hasTarget ||
      !ArgOptString(info, 2, &fstype, &hasFstype) || !ArgUint(info, 3, &flags) ||
      !ArgOptString(info, 4, &data, &hasData)) {
    return ThrowType(env, "mount(source|null, target, fstype|null, flags, data|null): bad arguments");
  }
  if (mount(hasSource ? source.c_str() : nullptr, target.c_str(), hasFstype ? fstype.c_str() : nullptr, flags,
            hasData ? data.c_str() : nullptr) != 0) {
    return ThrowErrno(env, errno, "mount", target);
  }
  return env.Undefined();
}

Napi::Value Umount2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t flags;
  if (info.Length() < 1 || !info[0].IsString() || !ArgUint(info, 1, &flags)) {
    return ThrowType(env, "umount2(target, flags): bad arguments");
  }
  std::string target = info[0].As<Napi::String>().Utf8Value();
  if (umount2(target.c_str(), static_cast<int>(flags)) != 0) return ThrowErrno(env, errno, "umount2", target);
  return env.Undefined();
}

Napi::Value NsType(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t fd;
  if (!ArgUint(info, 0, &fd)) return ThrowType(env, "nsType(fd): fd must be a non-negative integer");
  int type = ioctl(static_cast<int>(fd), NS_GET_NSTYPE);
  // ENOTTY: fd is not a namespace file at all.
  if (type < 0) return ThrowErrno(env, errno, "ioctl", "NS_GET_NSTYPE");
  return Napi::Number::New(env, type);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("setns", Napi::Function::New(env, SetNs, "setns"));
  exports.Set("withNetns", Napi::Function::New(env, WithNetns, "withNetns"));
  exports.Set("unshareNet", Napi::Function::New(env, UnshareNet, "unshareNet"));
  exports.Set("mount", Napi::Function::New(env, Mount, "mount"));
  exports.Set("umount2", Napi::Function::New(env, Umount2, "umount2"));
  exports.Set("nsType", Napi::Function::New(env, NsType, "nsType"));
  // The constants callers need, so the TypeScript side does not hard-code them.
  Napi::Object c = Napi::Object::New(env);
  c.Set("CLONE_NEWNET", Napi::Number::New(env, CLONE_NEWNET));
  c.Set("MS_BIND", Napi::Number::New(env, MS_BIND));
  c.Set("MS_REC", Napi::Number::New(env, MS_REC));
  c.Set("MS_SHARED", Napi::Number::New(env, MS_SHARED));
  c.Set("MS_PRIVATE", Napi::Number::New(env, MS_PRIVATE));
  c.Set("MS_SLAVE", Napi::Number::New(env, MS_SLAVE));
  c.Set("MS_NOSUID", Napi::Number::New(env, MS_NOSUID));
  c.Set("MS_NODEV", Napi::Number::New(env, MS_NODEV));
  c.Set("MS_NOEXEC", Napi::Number::New(env, MS_NOEXEC));
  c.Set("MNT_DETACH", Napi::Number::New(env, MNT_DETACH));
  c.Set("MNT_FORCE", Napi::Number::New(env, MNT_FORCE));
  exports.Set("constants", c);
  return exports;
}

}  // namespace

NODE_API_MODULE(netd_native, Init)

# CHAT_SANITIZE=address: AddressSanitizer + LeakSanitizer + UndefinedBehaviorSanitizer;
# CHAT_SANITIZE=thread: ThreadSanitizer. Every
# target of the project (programs, libraries, tests) is built and linked
# with it; the system libraries (CAF, libpqxx, Boost headers aside) are not.
# deploy/build.sh builds these into build-asan / build-tsan, deploy/test.sh
# runs the suite there with the options and suppressions of deploy/sanitizers/.
set(CHAT_SANITIZE "" CACHE STRING "sanitizer build: empty (none), address or thread")
if(CHAT_SANITIZE STREQUAL "address")
  # Every UB check is fatal except `null`: UBSan suppressions only apply to
  # recoverable checks, and CAF 0.17's headers bind a reference to null
  # (deploy/sanitizers/ubsan.supp); UBSAN_OPTIONS=halt_on_error=1
  # (deploy/sanitizers/env.sh) makes an unsuppressed one fatal too.
  set(_chat_sanitize_flags -fsanitize=address,undefined -fno-sanitize-recover=undefined
                           -fsanitize-recover=null)
elseif(CHAT_SANITIZE STREQUAL "thread")
  set(_chat_sanitize_flags -fsanitize=thread)
elseif(NOT CHAT_SANITIZE STREQUAL "")
  message(FATAL_ERROR "CHAT_SANITIZE must be empty, address or thread")
endif()
if(_chat_sanitize_flags)
  if(CHAT_ALLOCATOR)
    message(FATAL_ERROR "CHAT_SANITIZE needs glibc's malloc: leave CHAT_ALLOCATOR empty")
  endif()
  # Readable stacks; -O1 (after the build type's -O3) builds faster and keeps
  # the reports exact.
  add_compile_options(${_chat_sanitize_flags} -fno-omit-frame-pointer -g -O1)
  add_link_options(${_chat_sanitize_flags})
  message(STATUS "CHAT_SANITIZE=${CHAT_SANITIZE}: ${_chat_sanitize_flags}")
endif()

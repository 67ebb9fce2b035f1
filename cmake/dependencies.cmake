# Imported targets for the Debian 12 packages we build against.
# CAF 0.17 and RapidJSON ship no usable CMake targets, so we make our own.
find_package(Threads REQUIRED)

find_path(CAF_INCLUDE_DIR caf/all.hpp REQUIRED)
find_library(CAF_CORE_LIBRARY caf_core REQUIRED)
find_library(CAF_IO_LIBRARY caf_io REQUIRED)
add_library(CAF::core INTERFACE IMPORTED)
target_include_directories(CAF::core INTERFACE ${CAF_INCLUDE_DIR})
target_link_libraries(CAF::core INTERFACE ${CAF_CORE_LIBRARY} Threads::Threads)
add_library(CAF::io INTERFACE IMPORTED)
target_link_libraries(CAF::io INTERFACE ${CAF_IO_LIBRARY} CAF::core)
# The cluster port's mutual TLS (libcaf_openssl, in Debian's libcaf-dev).
find_library(CAF_OPENSSL_LIBRARY caf_openssl REQUIRED)
add_library(CAF::openssl INTERFACE IMPORTED)
target_link_libraries(CAF::openssl INTERFACE ${CAF_OPENSSL_LIBRARY} CAF::io)

find_package(Boost 1.74 REQUIRED)   # Boost::headers (Beast, Asio)

find_package(PkgConfig REQUIRED)
pkg_check_modules(PQXX REQUIRED IMPORTED_TARGET libpqxx)
pkg_check_modules(JWT REQUIRED IMPORTED_TARGET libjwt)

find_package(RapidJSON REQUIRED)
add_library(RapidJSON::RapidJSON INTERFACE IMPORTED)
target_include_directories(RapidJSON::RapidJSON INTERFACE ${RAPIDJSON_INCLUDE_DIRS})
target_compile_definitions(RapidJSON::RapidJSON INTERFACE RAPIDJSON_HAS_STDSTRING=1)

find_package(CURL REQUIRED)      # CURL::libcurl
find_package(OpenSSL REQUIRED)   # OpenSSL::Crypto
find_package(doctest REQUIRED)   # doctest::doctest
include(doctest)                 # doctest_discover_tests()
find_package(spdlog REQUIRED)    # spdlog::spdlog

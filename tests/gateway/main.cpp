// doctest's main, plus CAF's test engine symbols that caf/test/dsl.hpp needs.
// The tests avoid CAF's CHECK macros (they need CAF's own runner) and use
// doctest's instead.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#define CAF_TEST_NO_MAIN
#include <caf/test/unit_test_impl.hpp>

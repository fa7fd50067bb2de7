// The Catch2 (v2) main of inn_tests. Test files include <catch2/catch.hpp> only.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
